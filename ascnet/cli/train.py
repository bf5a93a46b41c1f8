"""`ascnet-train` (not built yet)."""
import sys

import click


@click.group()
def main():
    """ascnet-train"""


@main.command()
def status():
    click.echo("ascnet-train: not available yet", err=True)
    sys.exit(2)
