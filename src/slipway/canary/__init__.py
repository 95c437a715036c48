"""Canary analysis: a pure decision over measured windows, the controller that drives a deploy target, a simulator.

Modules: `policy` (the `CanaryConfig` limits), `checks` (one pure function per check), `decision`
(`decide`), `controller` (`run_canary`, `reconcile`), `report` (tables, markdown, PNG), `simulate`
(a seeded fake target + metrics source with the fault catalogue). Nothing heavy is imported here.
"""
