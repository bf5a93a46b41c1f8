"""`ascnet-index` (not built yet)."""
import sys

import click


@click.group()
def main():
    """ascnet-index"""


@main.command()
def status():
    click.echo("ascnet-index: not available yet", err=True)
    sys.exit(2)
