"""`pyro-dvae train`: build a config from preset, file and flags; train or resume; report."""

from __future__ import annotations

import json
import time
from pathlib import Path

import click
import torch

from ..config import (
    DEFAULT_FAMILY,
    DEVICE_PATTERN,
    ELBOS,
    LIKELIHOODS,
    MAX_SEED,
    PRECISIONS,
    PRESETS,
    DataConfig,
    RunConfig,
    preset,
    read_config_file,
)
from ..errors import UserInputError
from ..runs import resolve_device

#: Seeds of the commands other than train (whose --seed is checked with the config): 64-bit torch seeds.
SEED = click.IntRange(0, MAX_SEED)


def parse_options(pairs: tuple[str, ...], kind: str = "data", example: str = "digits=1") -> dict:
    """KEY=VALUE pairs -> dict; values parsed as JSON when they are JSON (numbers, true), else text."""
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UserInputError(f"{kind} option {pair!r} is not KEY=VALUE; e.g. --{kind}-option {example}")
        try:
            options[key] = json.loads(value)
        except ValueError:
            options[key] = value
    return options


def build_config(preset_name: str, data: str | None, config_file: Path | None, device: str | None,
                 overrides: dict, data_options: dict, model: str | None = None,
                 model_options: dict | None = None) -> RunConfig:
    """The model family's preset, then the config file, then flags (each later one wins)."""
    from_file = read_config_file(config_file) if config_file is not None else {}
    for section, values in from_file.items():
        if section not in ("model", "train", "data") or not isinstance(values, dict):
            raise UserInputError(f"config file {config_file}: [{section}] is not a section of settings; "
                                 "use the tables [model], [train] and [data]")
    source = data or from_file.get("data", {}).get("source") or DataConfig.source
    family = model or from_file.get("model", {}).get("family") or DEFAULT_FAMILY
    # --device, else the file's (checked, never replaced by auto), else auto.
    device = device or from_file.get("train", {}).get("device") or "auto"
    if not isinstance(device, str) or not DEVICE_PATTERN.fullmatch(device):
        raise UserInputError(f"unknown device {device!r}; use auto, cpu, cuda, cuda:N or mps")
    if preset_name == "auto":
        preset_name = "paper" if resolve_device(device).type == "cuda" else "cpu"
    merged = preset(preset_name, source, family).to_dict()
    for section, values in from_file.items():
        merged[section].update(values)
    merged["model"]["family"] = family
    config = RunConfig.from_dict(merged)
    config = config.override("data", source=source,
                             options={**config.data.options, **data_options} or None)
    model_keys = ("f_dim", "z_dim", "frames", "image_size", "likelihood", "z_prior", "f_prior")
    flags = {k: overrides[k] for k in model_keys if overrides.get(k) is not None}
    config = config.override("model", **{**(model_options or {}), **flags})
    train_keys = ("steps", "batch_size", "lr", "lr_anneal", "weight_average", "seed", "elbo", "kl_warmup",
                  "f_kl_weight", "max_minutes", "tensorboard", "precision", "channels_last", "compile")
    config = config.override("train", device=device, **{k: overrides.get(k) for k in train_keys})
    return config.validate()


@click.command("train")
@click.option("--model", "model",
              help="Model family: dvae (default: Helminger et al. 2018, order-free), dsa (Li & Mandt 2018), "
                   "drnet (Denton & Birodkar 2017), or one that an installed package declares.")
@click.option("--data", "data",
              help="Data source: sprites (default), moving-mnist, squares, ... or a path to your data.")
@click.option("--preset", "preset_name", type=click.Choice(("auto", *PRESETS)), default="auto",
              show_default=True, help="Architecture and schedule; auto = paper on CUDA, cpu otherwise.")
@click.option("--steps", type=click.IntRange(min=1), help="Total SVI steps of the run (also when resuming).")
@click.option("--batch-size", type=click.IntRange(min=1), help="Sets per step.")
@click.option("--frames", type=click.IntRange(min=2),
              help="Frames per training example: N drawn and compared pairwise (dvae), window length T (dsa).")
@click.option("--f-dim", type=click.IntRange(min=1), help="Dimension of the static code f.")
@click.option("--z-dim", type=click.IntRange(min=1), help="Dimension of the dynamic code z.")
@click.option("--image-size", type=click.Choice(["16", "32", "64", "128"]), help="Side of the frames the model sees.")
@click.option("--likelihood", type=click.Choice(LIKELIHOODS), help="Pixel likelihood p(x|f,z).")
@click.option("--z-prior", help="DVAE: registered p(z|f) prior (conditional-gaussian, standard-normal, ...).")
@click.option("--f-prior", help="Registered p(f) prior (standard-normal, flow, ...).")
@click.option("--elbo", type=click.Choice(ELBOS),
              help="trace: Monte Carlo KLs; meanfield: analytic KLs; jit: Pyro JitTrace_ELBO.")
@click.option("--kl-warmup", type=click.IntRange(min=0), help="Steps over which the KL weight rises to 1.")
@click.option("--f-kl-weight", type=click.FloatRange(min=0, min_open=True),
              help="beta_f: weight of the static code's KL term while training (1: the ELBO).")
@click.option("--max-minutes", type=click.FloatRange(min=0),
              help="Wall-clock budget: end the run cleanly (checkpoint, figures) when it is spent; 0 for none.")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), help="Adam learning rate.")
@click.option("--lr-anneal", type=click.FloatRange(min=0, max=1, max_open=True), metavar="FRACTION",
              help="Train the last FRACTION of the run (of --steps or --max-minutes, whichever ends it) at a "
                   "tenth of --lr (0: never).")
@click.option("--weight-average", type=click.FloatRange(min=0, max=1, max_open=True), metavar="DECAY",
              help="Keep and use a moving average of the weights with this decay per step, e.g. 0.999 (0: none).")
@click.option("--seed", type=int, help="Random seed (weights, batches).")
@click.option("--device", help="auto (the default: CUDA when present), cpu, cuda or cuda:N.")
@click.option("--out", type=click.Path(path_type=Path), help="Run directory (default runs/DATA-TIME).")
@click.option("--resume", type=click.Path(path_type=Path), help="Continue the run in this directory to --steps.")
@click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="TOML config ([model], [train], [data]); flags override it.")
@click.option("--crop", type=click.Choice(["center", "faces"]),
              help="Video/image folders: centre crop, or crop to the detected face (pip install pyro-dvae[video]).")
@click.option("--data-option", "data_options", multiple=True, metavar="KEY=VALUE",
              help="Source option, e.g. digits=1 or limit_identities=50 (repeatable).")
@click.option("--model-option", "model_options", multiple=True, metavar="KEY=VALUE",
              help="A setting of the model family's config, e.g. posterior=full or rnn_hidden=64 for dsa "
                   "(repeatable).")
@click.option("--tensorboard", is_flag=True, default=None,
              help="Also log the metrics for TensorBoard in RUN/tensorboard (pip install 'pyro-dvae[tensorboard]').")
@click.option("--precision", type=click.Choice(PRECISIONS),
              help="fp32, or bf16: the networks under bfloat16 autocast, the ELBO in float32 (GPU fast path).")
@click.option("--channels-last", is_flag=True, default=None, help="Convolutions in NHWC memory layout (GPU fast path).")
@click.option("--compile", "compile_", is_flag=True, default=None,
              help="torch.compile each network (GPU fast path; needs a C compiler on a CPU).")
@click.option("--nproc", type=click.IntRange(min=1), default=1, show_default=True,
              help="Train data-parallel in this many processes on this machine (one per GPU; gloo on CPU), "
                   "as `torchrun --standalone --nproc_per_node N -m pyro_dvae train ...` does. --batch-size is "
                   "the global batch.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def train_command(model, data, preset_name, device, out, resume, config_file, data_options, model_options, crop,
                  nproc, quiet, compile_, **flags):
    """Train a model (DVAE by default; --model dsa) and write a run directory (config, metrics, checkpoint, figures)."""
    from ..distributed import is_main_process, launched_world_size
    from ..training import resume as resume_run
    from ..training import train

    flags["compile"] = compile_
    if nproc > 1 and launched_world_size() > 1:
        raise UserInputError("--nproc starts the processes itself; under torchrun leave it out")
    say = click.echo if is_main_process() else (lambda *a, **k: None)
    if flags["image_size"] is not None:
        flags["image_size"] = int(flags["image_size"])
    if resume is not None:
        from .. import pretrained

        if pretrained.is_reference(resume):
            raise pretrained.read_only(resume, "be resumed")
        changed = [k for k, v in flags.items() if v is not None and k not in ("steps", "max_minutes", "lr")]
        if changed or config_file or data_options or model_options or model or crop or out:
            raise UserInputError("when resuming only --steps, --max-minutes, --lr, --device and --nproc may be given; "
                                 "the run's own config is used")
        device = device or "auto"
        if nproc > 1:
            return _launch(nproc, ["--resume", str(resume), "--device", device, *_session_flags(flags, quiet)], resume,
                           device=device)
        say(f"resuming {resume} on {resolve_device(device)}")
        run = resume_run(resume, steps=flags["steps"], device=device, progress=not quiet,
                         max_minutes=flags["max_minutes"], lr=flags["lr"])
    else:
        options = {**parse_options(data_options), **({"crop": crop} if crop else {})}
        config = build_config(preset_name, data, config_file, device, flags, options, model,
                              parse_options(model_options, "model", "posterior=full"))
        out = out or Path("runs") / f"{Path(str(config.data.source)).name}-{time.strftime('%Y%m%d-%H%M%S')}"
        device = config.train.device
        if nproc > 1:
            return _launch(nproc, ["--preset", preset_name, "--config", None, "--out", str(out),
                                   *_session_flags({}, quiet)], out, config, device)
        say(f"model: {config.model.family}  device: {resolve_device(device)}  "
                   f"preset: {_preset_label(preset_name, device)}  data: {config.data.source}  "
                   f"steps: {config.train.steps}  out: {out}")
        run = train(config, out, progress=not quiet)
    last = [m for m in run.metrics() if m["split"] == "test" and "elbo_per_frame" in m]
    elbo = f"  held-out ELBO/frame {last[-1]['elbo_per_frame']:.2f}" if last else ""
    say(f"done: step {run.step}{elbo}; figures in {run.figures_dir}")


def _session_flags(flags: dict, quiet: bool) -> list[str]:
    """The flags a resume passes on to its workers."""
    out = [f"--{name.replace('_', '-')}={flags[name]}" for name in ("steps", "max_minutes", "lr")
           if flags.get(name) is not None]
    return out + (["--quiet"] if quiet else [])


def _launch(nproc: int, args: list[str], out: Path, config: RunConfig | None = None, device: str = "auto") -> None:
    """Start ``nproc`` workers running ``pyro-dvae train ARGS`` (a new run gets the config resolved
    here, written to a temporary file, so every worker trains exactly what this command checked)."""
    import tempfile

    from ..config import to_toml
    from ..distributed import Ranks, launch_local

    if resolve_device(device).type == "cuda" and nproc > torch.cuda.device_count():
        raise UserInputError(f"--nproc {nproc} needs one GPU per process but this machine has "
                             f"{torch.cuda.device_count()}; lower --nproc")
    if config is not None:
        Ranks(world_size=nproc).share(config.train.batch_size)  # refuse an uneven split before starting
    click.echo(f"training on {nproc} processes (data-parallel; global batch "
               f"{config.train.batch_size if config else 'as the run'}): {out}")
    with tempfile.TemporaryDirectory(prefix="pyro-dvae-") as tmp:
        if config is not None:
            path = Path(tmp) / "config.toml"
            path.write_text(to_toml(config))
            args = [str(path) if a is None else a for a in args]
        launch_local(nproc, ["train", *args], str(out))


def _preset_label(name: str, device: str) -> str:
    if name != "auto":
        return name
    return "paper (auto: CUDA)" if resolve_device(device).type == "cuda" else "cpu (auto: no CUDA)"
