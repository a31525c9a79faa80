"""The rule engine, one module per job.

* :mod:`audit.engine.catalogue`: what the engine runs: the derived models of
  ``sql/derive/`` (in the order their references give) and the rules, one
  folder each under ``sql/rules/<RULE_ID>/``; the engine hash.
* :mod:`audit.engine.build`: building a derived table or running a rule, in
  full or for the touched patients only.
* :mod:`audit.engine.side_by_side`: a full audit's models and rules built on
  two connections at once, then moved into ``core`` by the audit's transaction.
* :mod:`audit.engine.plan`: whether an audit is full or incremental, and why.
* :mod:`audit.engine.run`: one audit: models, rules, care pathway, cases.
* :mod:`audit.engine.cases`: case states (new, persisting, resolved and why)
  and the evidence kept per case.
"""
