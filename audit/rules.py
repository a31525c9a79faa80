"""The rule engine's entry points (the modules of :mod:`audit.engine` own the jobs)."""

from audit.engine.catalogue import (
    CASE_COLUMNS,
    Model,
    Rule,
    catalogue,
    engine_sha256,
    post_rule_models,
)
from audit.engine.plan import INCREMENTAL_MAX_SHARE, Plan, plan
from audit.engine.run import NOTHING_LOADED, AuditResult, evaluate, history_start

__all__ = [
    "CASE_COLUMNS", "INCREMENTAL_MAX_SHARE", "NOTHING_LOADED", "AuditResult", "Model", "Plan",
    "Rule", "catalogue", "engine_sha256", "evaluate", "history_start", "plan",
    "post_rule_models",
]  # fmt: skip
