"""kfinstall: turn an Ansible inventory plus one kfinstall.yaml into a GPU machine-learning platform."""

__all__ = ["__version__"]

__version__ = "0.1.0"
