"""docs/reference/settings.md, generated from the settings declaration: every option and environment variable."""

from backpropagate.config import env_variables, field_for
from backpropagate.contract.schema import allowed_text, default_of
from backpropagate.contract.settings import CAMPAIGN_GROUP, GROUPS
from backpropagate.options import RunOption, grouped_options, shown_value


def settings_markdown() -> str:
    lines = [
        "# Settings and environment",
        "",
        "Every setting is resolved in one order: its default, then its `BACKPROPAGATE_*` environment variable,",
        "then a flag (`backprop train`, `multi-run`) or a keyword argument (`Trainer(...)`, `train(...)`).",
        "A run option is the same setting under each name: `--lora-r` on the command line, `lora_r=` in the",
        "Python API, the `lora_r` field of the web UI's new-run form, `BACKPROPAGATE_LORA__R` in the environment.",
        "Generated from `cli/backpropagate/contract/settings.py` and `config.py` by "
        "`python scripts/gen_settings_docs.py`.",
    ]
    options = list(grouped_options().values())
    for group in GROUPS:
        rows = [option for option in options if option.group == group]
        if not rows:
            continue
        only = " (`multi-run` and `Trainer.multi_run()` only)" if group == CAMPAIGN_GROUP else ""
        lines += ["", f"## {group}{only}", "", "| flag | API | environment | default | accepts | what it does |",
                  "| --- | --- | --- | --- | --- | --- |"]
        lines += [_option_row(option) for option in rows]
    lines += ["", "## Environment only", "",
              "Settings with no flag of a run: set them in the environment (`--json` is every command's flag).", "",
              "| environment | default | accepts | what it does |", "| --- | --- | --- | --- |"]
    run_keys = {option.key for option in options}
    for variable, (section, name) in env_variables().items():
        key = f"{section}.{name}" if section else name
        if key in run_keys:
            continue
        f = field_for(key)
        lines.append(f"| `{variable}` | `{shown_value(default_of(f))}` | {_cell(allowed_text(f))} | "
                     f"{_cell(f.metadata.get('help', ''))} |")
    return "\n".join(lines) + "\n"


def _option_row(option: RunOption) -> str:
    flag = f"`{option.flag}`" + (f" / `{option.off_flag}`" if option.off_flag else "") + (
        f", `{option.short}`" if option.short else "")
    return (f"| {flag} | `{option.name}` | `{option.env}` | `{option.shown_default()}` | {_cell(option.allowed)} | "
            f"{_cell(option.help)} |")


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
