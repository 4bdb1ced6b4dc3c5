"""Write docs/reference/cli.md from the `backprop` typer app: python scripts/gen_cli_docs.py

Every command and subcommand, walked from the click tree typer builds, with its help exactly as
`--help` prints it (usage, arguments, options with their defaults and variables, examples).
"""

from pathlib import Path

TARGET = Path(__file__).resolve().parents[1] / "docs" / "reference" / "cli.md"
# A fixed width, so the page does not depend on the terminal it was generated in.
WIDTH = 100


def command_tree():
    """(context, command) for the root and every command under it, depth first, in registration order."""
    import typer.main

    from backpropagate.app import app

    root = typer.main.get_command(app)
    found = []

    def walk(command, ctx):
        found.append((ctx, command))
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, sub.make_context(name, [], parent=ctx, resilient_parsing=True))

    walk(root, root.make_context("backprop", [], resilient_parsing=True,
                                 terminal_width=WIDTH, max_content_width=WIDTH))
    return found


def cli_reference() -> str:
    tree = command_tree()
    lines = [
        "# CLI reference",
        "",
        "Every `backprop` command with its `--help`. Generated from the typer app "
        "(`cli/backpropagate/app.py`) by `python scripts/gen_cli_docs.py`; a unit test fails when this "
        "page is out of date.",
        "",
        "| command | what it does |",
        "| --- | --- |",
    ]
    for ctx, command in tree[1:]:
        anchor = ctx.command_path.replace(" ", "-")
        summary = command.get_short_help_str(limit=WIDTH).replace("|", "\\|")
        lines.append(f"| [`{ctx.command_path}`](#{anchor}) | {summary} |")
    for ctx, command in tree:
        lines += ["", f"## {ctx.command_path}", "", "```text", command.get_help(ctx).rstrip(), "```"]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    TARGET.write_text(cli_reference())
    print(TARGET)
