//! Small dense ids for the values of a string field (categories, fairness
//! groups), shared by the workers that see them and the monitors that name them.
//! At most [`MAX_CATEGORIES`] names get their own id; the rest share `_other`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

pub use vigil_operators::drift::feature::MAX_CATEGORIES;

/// The id of every value past the cap.
pub const OTHER: u32 = MAX_CATEGORIES as u32;

#[derive(Default)]
pub struct Interner {
    inner: Mutex<(HashMap<String, u32>, Vec<String>)>,
}

impl Interner {
    pub fn new() -> Arc<Interner> {
        Arc::new(Interner::default())
    }

    /// The id of `name` (`None`: the field was absent, named `_absent`).
    pub fn id(&self, name: Option<&str>) -> u32 {
        let name = name.unwrap_or("_absent");
        let mut guard = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let (ids, names) = &mut *guard;
        if let Some(id) = ids.get(name) {
            return *id;
        }
        if names.len() >= MAX_CATEGORIES {
            return OTHER;
        }
        let id = names.len() as u32;
        ids.insert(name.to_owned(), id);
        names.push(name.to_owned());
        id
    }

    pub fn name(&self, id: u32) -> String {
        let guard = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        guard.1.get(id as usize).cloned().unwrap_or_else(|| "_other".into())
    }
}

/// A worker's cache in front of a shared [`Interner`]: the lock is taken once per
/// new value, not per event.
pub struct LocalIds {
    shared: Arc<Interner>,
    cache: HashMap<String, u32>,
}

impl LocalIds {
    pub fn new(shared: Arc<Interner>) -> LocalIds {
        LocalIds { shared, cache: HashMap::new() }
    }

    pub fn id(&mut self, name: Option<&str>) -> u32 {
        let Some(name) = name else {
            return self.shared.id(None);
        };
        if let Some(id) = self.cache.get(name) {
            return *id;
        }
        let id = self.shared.id(Some(name));
        if self.cache.len() < 4 * MAX_CATEGORIES {
            self.cache.insert(name.to_owned(), id);
        }
        id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_dense_shared_and_capped() {
        let shared = Interner::new();
        let (mut a, mut b) = (LocalIds::new(shared.clone()), LocalIds::new(shared.clone()));
        assert_eq!(a.id(Some("US")), 0);
        assert_eq!(b.id(Some("DE")), 1);
        assert_eq!(b.id(Some("US")), 0);
        assert_eq!(a.id(None), 2);
        assert_eq!(shared.name(2), "_absent");
        for i in 0..2 * MAX_CATEGORIES {
            a.id(Some(&format!("c{i}")));
        }
        assert_eq!(a.id(Some("one more")), OTHER);
        assert_eq!(shared.name(OTHER), "_other");
    }
}
