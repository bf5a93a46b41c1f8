"""`ascnet-eval` (not built yet)."""
import sys

import click


@click.group()
def main():
    """ascnet-eval"""


@main.command()
def status():
    click.echo("ascnet-eval: not available yet", err=True)
    sys.exit(2)
