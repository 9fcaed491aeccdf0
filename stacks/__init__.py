"""kfinstall's platform layer: one Pulumi ComponentResource per service, built by `program(cfg)`."""

from stacks.program import program

__all__ = ["program"]
