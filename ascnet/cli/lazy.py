"""A click group whose sub-commands are imported only when used (keeps --help fast)."""
import importlib
import sys

import click


class LazyGroup(click.Group):
    def __init__(self, *args, lazy_commands=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.lazy_commands = dict(lazy_commands or {})

    def list_commands(self, ctx):
        return sorted(set(super().list_commands(ctx)) | set(self.lazy_commands))

    def get_command(self, ctx, name):
        if name in self.lazy_commands:
            module, attr = self.lazy_commands[name]
            try:
                return getattr(importlib.import_module(module), attr)
            except (ImportError, AttributeError) as e:
                why = str(e)

                @click.command(name=name, help=f"(not available: {why})")
                def unavailable():
                    click.echo(f"{self.name} {name}: not available ({why})", err=True)
                    sys.exit(2)

                return unavailable
        return super().get_command(ctx, name)
