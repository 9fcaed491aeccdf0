"""The infrastructure phase: the gcp profile's GKE cluster, GPU pool and Filestore share.

They are resources of the same Pulumi program as the platform (stacks/gcp.py), so the platform
phase's update creates them: this phase has a plan of its own and no separate run in `up`.
"""

from __future__ import annotations

from installer.config.resolved import ClusterConfig
from installer.phases.base import Component, Phase, PhasePlan


class InfrastructurePhase(Phase):
    name = "infrastructure"
    separate_run = False

    def plan(self, cfg: ClusterConfig) -> PhasePlan:
        if cfg.spec.profile != "gcp":
            return PhasePlan("infrastructure", False, reason="only the gcp profile creates its cluster")
        gcp = cfg.spec.gcp
        return PhasePlan(
            "infrastructure",
            True,
            (
                f"GKE cluster {cfg.name} in {gcp.region} (project {gcp.project}), "
                f"{gcp.node_count} x {gcp.machine_type}",
                f"GPU pool: {gcp.gpu_node_count} x {gcp.gpu_machine_type} with {gcp.gpu_count} x {gcp.gpu_type} "
                "(GKE-managed driver)",
                f"Filestore {gcp.filestore_tier} {gcp.filestore_capacity_gb} GB for ReadWriteMany volumes",
            ),
            components=(Component("kubernetes", "kubernetes", cfg.kubernetes_version, "GKE", "infrastructure"),),
        )


INFRASTRUCTURE = InfrastructurePhase()
