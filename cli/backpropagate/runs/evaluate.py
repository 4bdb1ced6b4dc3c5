"""Planning `backprop eval`: the quality report of a trained run, measured after the fact.

The run's own held-out rows and prompts are used unless others are given; the run's settings
(sequence length, loss masking, device, answer length) measure them as training did.
"""

from dataclasses import dataclass, replace
from pathlib import Path

from backpropagate.contract.dataset import dataset_file, load_dataset
from backpropagate.contract.errors import BackpropError
from backpropagate.contract.files import sha256_file
from backpropagate.contract.history import RunHistory
from backpropagate.contract.layout import RunFolder
from backpropagate.contract.quality import load_prompts, prompts_file
from backpropagate.contract.redact import redact
from backpropagate.contract.specs import DataSpec, EvalSpec, PromptsSpec, read_run_spec, write_spec
from backpropagate.contract.stages import STAGES
from backpropagate.runs.session import Pipeline, Step
from backpropagate.sinks.base import RunStart


@dataclass(frozen=True)
class EvalPlan:
    spec: EvalSpec
    folder: RunFolder

    def pipeline(self) -> Pipeline:
        start = RunStart(run_id=self.spec.run_id, run_dir=self.folder.root, kind="eval", runtime="")
        return Pipeline(start=start, steps=(Step("eval", self.folder.spec_of(STAGES["eval"].spec_file)),),
                        log=self.folder.log)


def plan_eval(output: Path, run: str, eval_data: Path | None = None, eval_prompts: Path | None = None,
              max_tokens: int | None = None) -> EvalPlan:
    output = Path(output).resolve()
    folder = RunFolder.of(output, RunHistory(output).find(run).run_id)
    train = read_run_spec(folder.spec, folder.root, folder.root.name)
    if not (folder.adapter / "adapter_config.json").exists():
        raise BackpropError("STATE_NO_ADAPTER", run_id=train.run_id, run_dir=folder.root)
    data = train.eval_data
    if eval_data is not None:
        path = dataset_file(eval_data, "--eval-data")
        load_dataset(path, "auto", False)  # a bad file costs nothing
        data = DataSpec(path=str(path), sha256=sha256_file(path), source=redact(str(path)))
    prompts = train.eval_prompts
    if eval_prompts is not None:
        path = prompts_file(eval_prompts)
        load_prompts(path, redact(str(path)))
        prompts = PromptsSpec(path=str(path), sha256=sha256_file(path), source=redact(str(path)))
    training = replace(train.training, eval_max_tokens=max_tokens) if max_tokens else train.training
    spec = EvalSpec(run_id=train.run_id, run_dir=str(folder.root), model=train.model, adapter=str(folder.adapter),
                    training=training, data=train.data, eval_data=data, eval_prompts=prompts,
                    log_level=train.log_level)
    write_spec(spec, folder.spec_of(STAGES["eval"].spec_file))
    return EvalPlan(spec=spec, folder=folder)
