"""`python -m installer` is the same as the `kfinstall` command."""

from installer.cli import main

if __name__ == "__main__":
    main()
