"""Feature consistency: training reads point-in-time features and serving reads online features through one
feature service, and a check proves the two agree.

Modules: `base` (the `FeatureStore` interface, `OnlineRows`), `feast_store` + `feast_repo` (the Feast backend,
Feast imported lazily), `fake` (in memory, for tests), `cache` (when apply/materialize can be skipped),
`factory` (from the `features` config section), `skew` (`compare`, `check_skew`), `cli`
(`slipway features ...`). Nothing heavy is imported here.
"""
