-- wrk script: GET /features/{key} for random card ids of the generator.
math.randomseed(42)
request = function()
  local card = math.floor((math.random() ^ 1.2) * 200000)
  return wrk.format("GET", string.format("/features/c-%06d", card))
end
