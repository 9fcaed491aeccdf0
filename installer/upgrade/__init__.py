"""Upgrades across release channels: the route planner, the upgrade preflight, backups, migrations.

`route.plan_route` turns (installed channel, installed Kubernetes, target channel, explicit
Kubernetes target) into typed hops; `preflight` judges a `ClusterFacts` snapshot against them;
`backup` writes checksummed backups before every hop; `migration_table` says which migration runs
at which channel boundary, `migrations` what each computes and `migration_steps` how a platform hop
runs it; `hops` holds what each kind of hop does; `executor` runs a route hop by hop, writing
state.json after each completed hop so a re-run resumes; `run` binds the executor to the live site.
Every threshold comes from installer/releases/ (the channel files and upgrade-rules.yml).
"""
