"""The Python API: the same runs as the CLI, in three lines.

    from backpropagate import Trainer
    trainer = Trainer("Qwen/Qwen2.5-7B-Instruct")
    result = trainer.train("my.jsonl", steps=100)

Keyword arguments are the run options of the settings declaration, the CLI's flags with underscores
(``lora_r=8``, ``device="cpu"``, ``report_to=["wandb"]`` or ``"none"``); ``Trainer.options()`` lists
them with their help and defaults. They override BACKPROPAGATE_* environment variables, which
override the defaults. Failures raise ``BackpropError`` with the same code the CLI would print.
"""


from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from backpropagate.config import command_settings, output_dir
from backpropagate.contract.errors import BackpropError
from backpropagate.contract.layout import RunFolder
from backpropagate.contract.quality import QualityReport, read_report
from backpropagate.contract.schema import to_dict
from backpropagate.options import grouped_options, settings_from_arguments
from backpropagate.output import Output
from backpropagate.runs.campaign import CampaignResult, run_campaign
from backpropagate.runs.campaign_plan import campaign_of, plan_campaign
from backpropagate.runs.export import plan_export
from backpropagate.runs.exports import check_export
from backpropagate.runs.plan import plan_resume, plan_train
from backpropagate.runs.session import Session

if TYPE_CHECKING:
    from backpropagate.hub.push import PushResult


@dataclass(frozen=True)
class TrainResult:
    run_id: str
    run_dir: Path
    adapter_path: Path
    final_loss: float
    loss_history: list[float] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)  # everything the stage reported
    quality: QualityReport | None = None  # with eval data or eval prompts


@dataclass(frozen=True)
class ExportResult:
    run_id: str
    format: str
    path: Path
    outputs: dict[str, Any] = field(default_factory=dict)
    quality: QualityReport | None = None  # with the GGUF's answers to the run's eval prompts


class Trainer:
    def __init__(self, model: str | None = None, *, progress: bool = True, **settings: Any) -> None:
        # Refuse bad names and values now; a campaign option (replay_fraction) is refused later by train().
        settings_from_arguments({**settings, "model": model}, call="Trainer()", campaign=True)
        self.model = model
        self.settings = settings
        self.progress = progress
        self.last_result: TrainResult | None = None

    @staticmethod
    def options() -> dict[str, str]:
        """Every keyword argument a Trainer, ``train`` and ``multi_run`` accept (``multi_run`` only: those of its
        Campaign group), with its help and default."""
        return {name: f"{option.help} [default {option.shown_default()}; env {option.env}]"
                for name, option in grouped_options().items()}

    def train(self, data: str | Path | None = None, steps: int | None = None, *, data_format: str = "auto",
              skip_invalid: bool = False, resume: str | None = None, eval_data: str | Path | None = None,
              eval_prompts: str | Path | None = None, **overrides: Any) -> TrainResult:
        """Train an adapter on ``data``; returns where it is and how the loss went.

        ``eval_data`` / ``eval_split=0.1`` and ``eval_prompts`` add the quality report (``result.quality``).
        ``resume=RUN`` continues that failed or interrupted run from its newest valid checkpoint
        with its own settings (``data`` and other arguments are then not used).
        """
        # None means "not given" here too, so train(data) keeps the steps the Trainer was made with.
        given = {**overrides, **({"steps": steps} if steps is not None else {})}
        settings = settings_from_arguments({**self.settings, **given, "model": self.model}, call="Trainer.train()")
        if resume is not None:
            plan = plan_resume(output_dir(settings), resume)
        elif data is None:
            raise BackpropError("CONFIG_VALUE_INVALID", name="data", value=None, reason="no dataset given",
                                allowed="a JSONL or JSON file (or resume=RUN to continue a run)")
        else:
            plan = plan_train(settings, data, data_format, skip_invalid, eval_data, eval_prompts)
        result = self._session(settings, trackers=True).run(plan.pipeline())["train"]
        self.last_result = TrainResult(run_id=plan.spec.run_id, run_dir=Path(plan.spec.run_dir),
                                       adapter_path=Path(result.adapter), final_loss=result.final_loss,
                                       loss_history=list(result.losses), outputs=to_dict(result),
                                       quality=read_report(RunFolder(Path(plan.spec.run_dir)).quality))
        return self.last_result

    def multi_run(self, dataset: str | Path | list | None = None, num_runs: int | None = None,
                  steps_per_run: int | None = None, samples_per_run: int | None = None, *, merge: str = "slao",
                  data_format: str = "auto", skip_invalid: bool = False, eval_data: list | None = None,
                  eval_prompts: list | None = None, resume: str | None = None, **overrides: Any) -> CampaignResult:
        """A campaign of ``num_runs`` runs as `backprop multi-run` trains it: ``dataset`` is one file split
        into runs of ``samples_per_run`` rows, or a list of files, one per run; ``merge="none"`` trains the
        same adapter on (sequential LoRA), and ``merge=`` takes every choice of the CLI's --merge; each run
        from the second also trains on as many rows of earlier runs as it has of its own
        (``replay_fraction=0.2``: a fifth as many; ``0``: none).
        ``resume=CAMPAIGN`` continues an unfinished campaign. ``export(run=result.campaign_id)`` exports the
        merged adapter."""
        given = {**overrides, **({"steps": steps_per_run} if steps_per_run is not None else {})}
        settings = settings_from_arguments({**self.settings, **given, "model": self.model}, call="Trainer.multi_run()",
                                           campaign=True)
        if resume is not None:
            plan, folder = campaign_of(output_dir(settings), resume)
        else:
            files = dataset if isinstance(dataset, (list, tuple)) else [dataset] if dataset is not None else []
            plan, folder, _ = plan_campaign(settings, [Path(f) for f in files], num_runs, samples_per_run, merge,
                                            data_format, skip_invalid, [Path(f) for f in eval_data or []],
                                            [Path(f) for f in eval_prompts or []])
        return run_campaign(plan, folder, settings, Output(json_mode=False), quiet=not self.progress)

    def export(self, format: str = "merged", *, quantization: str | None = None, verify: bool = True,
               dtype: str | None = None, run: str | None = None, output: str | Path | None = None) -> ExportResult:
        """Export the last trained run (or ``run``) as the CLI's `export --format` does: ``"merged"`` folds
        the adapter into the base model; ``"gguf"`` also converts and quantizes it with llama.cpp and
        verifies it against the merged model; ``"lora-gguf"`` converts the adapter alone."""
        given = {"--quantization"} if quantization is not None else set()
        given |= ({"--dtype"} if dtype is not None else set()) | (set() if verify else {"--no-verify"})
        check_export(format, given, quantization)
        target = run or (self.last_result.run_id if self.last_result else None)
        if target is None:
            raise BackpropError("CONFIG_VALUE_INVALID", name="run", value=None, reason="this Trainer has not trained",
                                allowed="call train() first, or pass run=RUN (a run id or folder)")
        output = output or self.settings.get("output")
        settings = command_settings(output, None, self.settings.get("runtime"), self.settings.get("gpus"))
        plan = plan_export(output_dir(settings), target, format, dtype or "float16", quantization or "q4_k_m", verify)
        results = self._session(settings).run(plan.pipeline())
        outputs = {key: value for result in results.values() for key, value in to_dict(result).items()}
        path = results["gguf"].gguf if "gguf" in results else results["merge"].merged
        return ExportResult(run_id=plan.run_id, format=format, path=Path(path), outputs=outputs,
                            quality=read_report(plan.folder.quality))

    def push(self, repo: str, what: str = "adapter", *, run: str | None = None, private: bool = False,
             revision: str | None = None, commit_message: str | None = None,
             token_file: str | Path | None = None, output: str | Path | None = None) -> "PushResult":
        """Push the last trained run's (or ``run``'s) adapter, merged model or GGUF files to the Hub repository
        ``repo`` (OWNER/NAME) with a model card, as `backprop push` does."""
        from backpropagate.hub.push import PushRequest, push
        from backpropagate.hub.target import WHATS, check_repo, resolve_push_target

        check_repo(repo)
        if what not in WHATS:
            raise BackpropError("CONFIG_VALUE_INVALID", name="what", value=what, reason="not a kind of push",
                                allowed=", ".join(WHATS))
        target = run or (self.last_result.run_id if self.last_result else None)
        if target is None:
            raise BackpropError("CONFIG_VALUE_INVALID", name="run", value=None, reason="this Trainer has not trained",
                                allowed="call train() first, or pass run=RUN (a run id or folder)")
        workspace = output_dir(command_settings(output or self.settings.get("output")))
        source = resolve_push_target(workspace, target, what)
        return push(workspace, source, PushRequest(repo, private, revision, commit_message,
                                                   Path(token_file) if token_file else None))

    def _session(self, settings, trackers: bool = False) -> Session:
        return Session.for_settings(settings, Output(json_mode=False), quiet=not self.progress, trackers=trackers)

