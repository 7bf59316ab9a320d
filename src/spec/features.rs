//! A job's features as declared (builder or TOML), and their resolution
//! against the source's schema: field names become indices, durations
//! milliseconds, and every rule a feature has is checked with a message that
//! names it.

use std::time::Duration;

use anyhow::{bail, Context as _, Result};
use vigil_operators::{Agg, DecayKind, Decayed, Emit, FeatureDef, RatioToMean, WindowFeature, WindowKind};

use super::time::duration_ms;
use super::{string_tag, FieldSpec, TableSpec, Window};

/// A feature as declared, before it is checked against the schema.
pub(super) enum PendingFeature {
    Window { name: String, agg: Agg, field: Option<String>, window: Window, emit: Emit },
    TimeSincePrev { name: String, ttl: Duration },
    Decayed { name: String, kind: DecayKind, field: Option<String>, half_life: Duration, ttl: Option<Duration> },
    PrevValue { name: String, field: String, ttl: Duration },
    RatioToMean { name: String, field: String, window: Duration, pane: Duration },
    Distinct { name: String, field: String, window: Duration },
    ApproxDistinct { name: String, field: String, window: Duration, pane: Duration, precision: u8 },
    Lookup { name: String, table: String, column: String, on: Option<String> },
}

/// What a feature is resolved against.
pub(super) struct Context<'a> {
    pub fields: &'a [FieldSpec],
    /// The numeric fields, in schema order (a feature's field index points here).
    pub numeric: &'a [&'a FieldSpec],
    pub tables: &'a [TableSpec],
    /// Whether the job names a topic for closed windows.
    pub windows_sink: bool,
}

impl Context<'_> {
    /// The index of the numeric field `field` that feature `feature` reads.
    fn numeric_index(&self, feature: &str, field: &str) -> Result<usize> {
        self.numeric.iter().position(|n| n.name == field).with_context(|| format!("feature `{feature}`: `{field}` is not a numeric field of the schema"))
    }
}

impl PendingFeature {
    /// The feature, checked; string fields it reads are added to `kept`.
    pub(super) fn resolve(self, ctx: &Context<'_>, kept: &mut Vec<String>) -> Result<FeatureDef> {
        Ok(match self {
            PendingFeature::Window { name, agg, field, window, emit } => {
                let field = match (agg.needs_field(), field) {
                    (true, None) => bail!("feature `{name}`: aggregate {agg:?} needs a field"),
                    (_, None) => None,
                    (_, Some(f)) => Some(ctx.numeric_index(&name, &f)?),
                };
                let (kind, window_ms) = window.resolve().with_context(|| format!("feature `{name}`"))?;
                if emit == Emit::OnClose && kind == WindowKind::Sliding {
                    bail!("feature `{name}`: a sliding window ends at every event; emit on close needs a tumbling, hopping or session window");
                }
                if emit == Emit::OnClose && !ctx.windows_sink {
                    bail!("feature `{name}` emits on close: name the topic for closed windows (`[sinks] windows`)");
                }
                FeatureDef::Window(WindowFeature { name, agg, field, window_ms, kind, emit })
            }
            PendingFeature::TimeSincePrev { name, ttl } => FeatureDef::TimeSincePrev { name, ttl_ms: duration_ms(ttl) },
            PendingFeature::Decayed { name, kind, field, half_life, ttl } => {
                let field = match (kind, field) {
                    (DecayKind::Count, None) => None,
                    (DecayKind::Count, Some(_)) => bail!("feature `{name}`: a decayed count takes no field"),
                    (_, None) => bail!("feature `{name}`: a decayed {kind:?} needs a field"),
                    (_, Some(f)) => Some(ctx.numeric_index(&name, &f)?),
                };
                let half_life_ms = duration_ms(half_life);
                if half_life_ms <= 0 {
                    bail!("feature `{name}`: the half-life must be positive");
                }
                let ttl_ms = ttl.map_or(half_life_ms.saturating_mul(16), duration_ms);
                FeatureDef::Decayed(Decayed { name, kind, field, half_life_ms, ttl_ms })
            }
            PendingFeature::PrevValue { name, field, ttl } => {
                let index = ctx.numeric_index(&name, &field)?;
                FeatureDef::PrevValue { name, field: index, ttl_ms: duration_ms(ttl) }
            }
            PendingFeature::RatioToMean { name, field, window, pane } => {
                let index = ctx.numeric_index(&name, &field)?;
                let (window_ms, pane_ms) = (duration_ms(window), duration_ms(pane));
                if pane_ms <= 0 || window_ms < pane_ms {
                    bail!("feature `{name}`: the pane must be positive and no longer than the window");
                }
                FeatureDef::RatioToMean(RatioToMean { name, field: index, window_ms, pane_ms })
            }
            PendingFeature::Distinct { name, field, window } => {
                let tag = string_tag(ctx.fields, kept, &format!("feature `{name}`"), &field)?;
                let window_ms = duration_ms(window);
                if window_ms <= 0 {
                    bail!("feature `{name}`: the window must be positive");
                }
                FeatureDef::Distinct(vigil_operators::Distinct { name, tag, window_ms })
            }
            PendingFeature::ApproxDistinct { name, field, window, pane, precision } => {
                let tag = string_tag(ctx.fields, kept, &format!("feature `{name}`"), &field)?;
                let (window_ms, pane_ms) = (duration_ms(window), duration_ms(pane));
                if pane_ms <= 0 || window_ms < pane_ms {
                    bail!("feature `{name}`: the pane must be positive and no longer than the window");
                }
                if !(4..=16).contains(&precision) {
                    bail!("feature `{name}`: precision is 4..=16 (2^precision registers), not {precision}");
                }
                FeatureDef::ApproxDistinct(vigil_operators::ApproxDistinct { name, tag, window_ms, pane_ms, precision })
            }
            PendingFeature::Lookup { name, table, column, on } => {
                let t = ctx
                    .tables
                    .iter()
                    .position(|t| t.name == table)
                    .with_context(|| format!("feature `{name}`: no table `{table}` (declare it with [[table]])"))?;
                let c = ctx.tables[t]
                    .columns
                    .iter()
                    .position(|c| *c == column)
                    .with_context(|| format!("feature `{name}`: table `{table}` has no column `{column}`"))?;
                let on = on.map(|f| string_tag(ctx.fields, kept, &format!("feature `{name}`"), &f)).transpose()?;
                FeatureDef::Lookup(vigil_operators::Lookup { name, table: t, column: c, on })
            }
        })
    }
}
