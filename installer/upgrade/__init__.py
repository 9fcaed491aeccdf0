"""Upgrades across release channels: the route planner, the upgrade preflight, backups, migrations.

`route.plan_route` turns (installed channel, installed Kubernetes, target channel, explicit
Kubernetes target) into typed hops; `preflight` judges a `ClusterFacts` snapshot against them;
`backup` writes checksummed backups before every hop; `migrations` holds the named per-hop steps;
`run` executes a route hop by hop, writing state.json after each completed hop so a re-run resumes.
Every threshold comes from installer/releases/ (the channel files and upgrade-rules.yml).
"""
