"""Plant realistic bugs one at a time in a temporary copy of the repo and run the FAST tests on each.

    python scripts/mutation_check.py                 # every mutation, then the table and `score: C/T`
    python scripts/mutation_check.py --list          # names and descriptions only
    python scripts/mutation_check.py --only NAME ... # a subset (names from --list)
    python scripts/mutation_check.py --specs FILE.json  # your own set instead of the built-in one

--specs reads a JSON list of {"name", "file", "old", "new", "tests"?, "description"?}: "file" is
relative to the repository root, "tests" the test files (or node ids) that should catch it
(default: the whole fast suite, "tests"). The same rules apply to both sets.

A mutation is (name, file, exact old snippet, new snippet, description, fast test files). The old
snippet must occur exactly once in the file; otherwise the mutation is reported "not applicable" and
counts as NOT caught, so the score stays honest after code moves: remap the paths in MUTATIONS.
A mutation is caught when pytest fails (or times out) on the mutated copy. The copy's own `distgan`
is imported (its path comes first on PYTHONPATH); the `import-canary` mutation proves it (for a
--specs set: the first applicable spec's file raising at import must fail that spec's tests).
Not run in CI: tens of pytest runs take several minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FAST = "not slow and not slurm and not netns"
NOT_A_VERDICT = (4, 5)  # pytest: usage error (e.g. a test file not found), no tests collected
TIMEOUT_S = 900  # a run this long counts as a hang (caught); normal groups take < 3 min on 2 busy cores

# ---------------------------------------------------------------- fast test groups
OBJ = ["tests/test_losses_exact.py", "tests/test_objectives.py"]
PHASES = ["tests/test_phases.py", "tests/test_conditional_models.py"]
LOOP = ["tests/test_trainer_loop.py"]
RESUME = ["tests/test_trainer.py"]
RUN_DIR = ["tests/reliability/test_run_directory.py"]
FAULTS = ["tests/reliability/test_nonfinite.py"]
SIGNALS = ["tests/reliability/test_signals.py"]
SECURITY = ["tests/reliability/test_checkpoint_security.py"]
ARCH = ["tests/test_architecture.py"]
EMA = ["tests/test_ema.py", "tests/test_trainer_loop.py"]
KID = ["tests/metrics/test_kid_reference.py", "tests/metrics/test_distances.py"]
FD = ["tests/metrics/test_distances.py"]
COVERAGE = ["tests/metrics/test_precision_recall_coverage.py"]
CONFIG = ["tests/test_config.py"]
DATA = [
    "tests/data/test_toy_epochs.py",
    "tests/data/test_data_sharding.py",
    "tests/data/test_data_resume.py",
    "tests/test_trainer_loop.py",
]


@dataclass(frozen=True)
class Mutation:
    name: str
    path: str  # relative to the repository root
    old: str  # exact snippet, must occur once
    new: str
    description: str
    tests: tuple[str, ...]


def m(name, path, old, new, description, tests) -> Mutation:
    return Mutation(name, path, old, new, description, tuple(tests))


# Not scored: run with the baseline, it must fail, or the tests import another tree than the copy.
CANARY = m(
    "import-canary",
    "distgan/ema.py",
    "import copy\n",
    "import copy\n\nraise RuntimeError('mutated copy')\n",
    "the copy raises at import: proves the copy, not the installed tree, is tested",
    ["tests/test_ema.py"],
)

MUTATIONS: list[Mutation] = [
    # --- the table
    m(
        "gp-one-alpha",
        "distgan/objectives.py",
        "alpha = torch.rand(real.shape[0], device=real.device)",
        "alpha = torch.rand(1, device=real.device).expand(real.shape[0])",
        "gradient_penalty draws ONE alpha for the whole batch",
        OBJ,
    ),
    m(
        "kid-quadratic-kernel",
        "distgan/metrics/kid.py",
        "return k * k * k",
        "return k * k",
        "KID with a quadratic instead of a cubic kernel",
        KID,
    ),
    m(
        "hinge-g-sign",
        "distgan/objectives.py",
        "def hinge_g(d_fake: torch.Tensor) -> torch.Tensor:\n    return -d_fake.mean()",
        "def hinge_g(d_fake: torch.Tensor) -> torch.Tensor:\n    return d_fake.mean()",
        "hinge_g sign flipped",
        OBJ,
    ),
    m(
        "r1-half-dropped",
        "distgan/objectives.py",
        '"loss": 0.5 * objective.r1_weight * r1',
        '"loss": objective.r1_weight * r1',
        "R1 weight doubled (the 0.5 dropped)",
        OBJ,
    ),
    m(
        "clipping-disabled",
        "distgan/distributed/ddp.py",
        "norm = self.accelerator.clip_grad_norm_(self.models[name].parameters(), self.grad_clip)",
        "norm = torch.nn.utils.clip_grad_norm_(self.models[name].parameters(), float('inf'))",
        "gradient clipping computes the norm but never clips",
        PHASES,
    ),
    m(
        "fake-not-detached",
        "distgan/step.py",
        "        with torch.no_grad():\n            fake = backend.generate(latent, labels).to(real.dtype)\n",
        "        fake = backend.generate(latent, labels).to(real.dtype)\n",
        "fake images not detached in the D step: the D loss reaches G",
        PHASES,
    ),
    m(
        "ema-decay-reversed",
        "distgan/ema.py",
        "torch._foreach_lerp_(ema_params, params, 1.0 - beta)",
        "torch._foreach_lerp_(ema_params, params, beta)",
        "EMA decay applied the wrong way round",
        EMA,
    ),
    m(
        "d-trainable-in-g-step",
        "distgan/distributed/backend.py",
        "discriminator.requires_grad_(False)",
        "discriminator.requires_grad_(True)",
        "D left trainable in the G step",
        PHASES,
    ),
    m(
        "n-critic-ignored",
        "distgan/trainer.py",
        "n_critic, device = self.cfg.train.n_critic_at(state.step), self.augment.tally.device",
        "n_critic, device = 1, self.augment.tally.device",
        "n_critic ignored: one D step per G step",
        LOOP,
    ),
    m(
        "same-noise-every-rank",
        "distgan/train_state.py",
        "return seed * 1000 + rank + 1 + 7919 * rollbacks",
        "return seed * 1000 + 1 + 7919 * rollbacks",
        "the same latent noise on every rank",
        LOOP,
    ),
    m(
        "rank0-to-stream",
        "distgan/trainer.py",
        "stream = stream or build_train_stream(cfg, world.rank, world.size)",
        "stream = stream or build_train_stream(cfg, 0, world.size)",
        "rank 0 passed to the data stream on every rank",
        LOOP,
    ),
    # --- objectives
    m(
        "wasserstein-d-sign",
        "distgan/objectives.py",
        "return d_fake.mean() - d_real.mean()",
        "return d_real.mean() - d_fake.mean()",
        "critic loss sign flipped",
        OBJ,
    ),
    m(
        "hinge-d-fake-margin",
        "distgan/objectives.py",
        "F.relu(1.0 + d_fake)",
        "F.relu(1.0 - d_fake)",
        "hinge D loss: wrong margin sign on fakes",
        OBJ,
    ),
    m(
        "smoothing-on-fake-too",
        "distgan/objectives.py",
        "d_fake, torch.zeros_like(d_fake)",
        "d_fake, torch.full_like(d_fake, 1.0 - real_label)",
        "label smoothing applied to the fake target too",
        OBJ,
    ),
    m(
        "saturating-g-loss",
        "distgan/objectives.py",
        "return F.binary_cross_entropy_with_logits(d_fake, torch.ones_like(d_fake))",
        "return -F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake))",
        "G uses the saturating log(1 - D(G(z))) loss",
        OBJ,
    ),
    m(
        "gp-weight-ignored",
        "distgan/objectives.py",
        '"loss": objective.gp_weight * penalty',
        '"loss": penalty',
        "gp_weight (lambda) ignored",
        OBJ,
    ),
    m(
        "gp-one-sided",
        "distgan/objectives.py",
        "return ((norms - 1.0) ** 2).mean(), norms.mean().detach()",
        "return ((norms - 1.0).clamp(min=0) ** 2).mean(), norms.mean().detach()",
        "one-sided gradient penalty instead of two-sided",
        OBJ,
    ),
    m(
        "r1-on-fakes",
        "distgan/objectives.py",
        "r1 = r1_penalty(inputs.discriminator, inputs.real, inputs.labels, inputs.loss_scale)",
        "r1 = r1_penalty(inputs.discriminator, inputs.fake, inputs.labels, inputs.loss_scale)",
        "R1 evaluated on fakes",
        OBJ,
    ),
    m(
        "amp-scale-not-undone",
        "distgan/objectives.py",
        "grads = grads / loss_scale",
        "grads = grads",
        "penalty input gradients not unscaled under fp16",
        OBJ,
    ),
    # --- backends
    m(
        "no-zero-grad",
        "distgan/distributed/ddp.py",
        "optimizer.zero_grad(set_to_none=True)",
        "pass",
        "gradients accumulate across updates",
        PHASES,
    ),
    m(
        "wrong-optimizer",
        "distgan/distributed/ddp.py",
        "optimizer = self.optimizers[name]",
        'optimizer = self.optimizers["d"]',
        "the G update steps D's optimizer",
        PHASES,
    ),
    m(
        "clip-wrong-model",
        "distgan/distributed/ddp.py",
        "clip_grad_norm_(self.models[name].parameters()",
        'clip_grad_norm_(self.models["d"].parameters()',
        "clipping always clips D's gradients",
        PHASES,
    ),
    # --- trainer
    m(
        "ema-step-frozen",
        "distgan/trainer.py",
        "self.ema.update(self.backend.generator_module, state.step, state.images_seen - images, images)",
        "self.ema.update(self.backend.generator_module, 0, 0, 0)",
        "EMA always updated with the step-0 warm-up decay",
        EMA,
    ),
    m(
        "d-labels-dropped",
        "distgan/step.py",
        "labels = batch.labels if self.settings.num_classes > 0 else None",
        "labels = None",
        "the D step ignores the class labels of a conditional model",
        PHASES,
    ),
    # --- checkpoint / resume
    m(
        "keep-last-off-by-one",
        "distgan/checkpoint/store.py",
        "for old in complete[: max(0, len(complete) + 1 - self.keep_last)]:",
        "for old in complete[: max(0, len(complete) - self.keep_last)]:",
        "one checkpoint too many kept",
        RESUME,
    ),
    m(
        "data-position-not-restored",
        "distgan/checkpoint/store.py",
        "            if name in rank_state:  # absent",
        '            if name in rank_state and name != "data":  # absent',
        "resume restarts the data stream from the beginning",
        RESUME,
    ),
    m(
        "ema-not-restored",
        "distgan/checkpoint/store.py",
        'load_weights(self.parts.weights[name], checkpoint_dir / f"{name}.safetensors")',
        "pass",
        "resume restarts the EMA from the raw generator",
        RESUME,
    ),
    m(
        "latest-before-complete",
        "distgan/checkpoint/store.py",
        '            write_text_atomic(self.root / LATEST, name + "\\n")\n',
        '            write_text_atomic(self.root / LATEST, checkpoint_name(step - 1) + "\\n")\n',
        "the `latest` pointer names the previous checkpoint",
        RESUME,
    ),
    # --- data
    m(
        "toy-shards-overlap",
        "distgan/data/toy.py",
        "perm[self.rank :: self.world_size]",
        "perm[:: self.world_size]",
        "every rank reads rank 0's share of the toy data",
        DATA,
    ),
    m(
        "toy-same-order-every-epoch",
        "distgan/data/toy.py",
        "np.random.default_rng([self.seed, epoch])",
        "np.random.default_rng([self.seed, 0])",
        "the toy data is visited in the same order every epoch",
        DATA,
    ),
    # --- metrics
    m(
        "kid-diagonal-kept",
        "distgan/metrics/kid.py",
        "k_xx.sum() - np.trace(k_xx)",
        "k_xx.sum()",
        "KID keeps the diagonal of K_xx (biased)",
        KID,
    ),
    m(
        "kid-kernel-unnormalised",
        "distgan/metrics/kid.py",
        "    k /= x.shape[1]\n",
        "",
        "KID kernel not divided by the feature dimension",
        KID,
    ),
    m(
        "fd-cross-term-halved",
        "distgan/metrics/frechet.py",
        "- 2.0 * trace_sqrt_product(cov_a, cov_b)",
        "- trace_sqrt_product(cov_a, cov_b)",
        "FD cross term not doubled",
        FD,
    ),
    m(
        "mode-quality-radius",
        "distgan/metrics/coverage.py",
        "HIGH_QUALITY_STDS = 3.0",
        "HIGH_QUALITY_STDS = 6.0",
        "high-quality radius 6 std instead of 3",
        COVERAGE,
    ),
    # --- ema
    m(
        "ema-no-warmup",
        "distgan/ema.py",
        "return min(self.decay, (1.0 + step) / (10.0 + step))",
        "return self.decay",
        "EMA warm-up removed",
        EMA,
    ),
    m(
        "ema-buffers-not-copied",
        "distgan/ema.py",
        "ema_buffer.copy_(buffer)",
        "pass",
        "EMA keeps stale BatchNorm statistics",
        EMA,
    ),
    # --- config
    m(
        "n-critic-bound",
        "distgan/config/sections.py",
        "1 <= self.n_critic <= MAX_N_CRITIC,",
        "0 <= self.n_critic <= MAX_N_CRITIC,",
        "n_critic=0 accepted",
        CONFIG,
    ),
    m(
        "n-critic-at-ignores-n-critic",
        "distgan/config/sections.py",
        "return self.critic_boost_n_critic if g_step < self.critic_boost_steps else self.n_critic",
        "return self.critic_boost_n_critic if g_step < self.critic_boost_steps else 1",
        "n_critic_at returns 1 after the boost",
        LOOP,
    ),
    m(
        "batch-divisibility-unchecked",
        "distgan/config/sections.py",
        "data.batch_size % world_size == 0,",
        "True,",
        "a global batch not divisible by the world size is accepted",
        CONFIG,
    ),
    m(
        "yaml-float-strings-rejected",
        "distgan/config/loading.py",
        '        elif isinstance(value, str):  # YAML 1.1 reads "1e-4" as a string\n',
        "        elif False:\n",
        "a YAML '1e-4' learning rate is rejected",
        CONFIG,
    ),
    # --- reliability (issue 11): faults, run directory, signals, security
    m(
        "nonfinite-loss-not-watched",
        "distgan/faults.py",
        'self.flag |= ~torch.isfinite(losses["loss"].detach()).all()',
        "pass",
        "a NaN loss is not flagged (found only later, in the weights)",
        FAULTS,
    ),
    m(
        "rollback-lr-not-reduced",
        "distgan/faults.py",
        "lr_scale, rollbacks = state.lr_scale * train.rollback_lr_factor, state.rollbacks + 1",
        "lr_scale, rollbacks = state.lr_scale, state.rollbacks + 1",
        "a rollback keeps the learning rates that diverged",
        FAULTS,
    ),
    m(
        "manifest-hash-unchecked",
        "distgan/checkpoint/locate.py",
        'if _sha256(path) != expected.get("sha256"):',
        "if False:",
        "an edited checkpoint file of the right size is trusted",
        RUN_DIR,
    ),
    m(
        "run-lock-not-taken",
        "distgan/checkpoint/rundir.py",
        "fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)",
        "pass",
        "two runs may write the same run directory",
        RUN_DIR,
    ),
    m(
        "resume-never-overwrites",
        "distgan/run_directory.py",
        "if existing and not overwrite:",
        "if False:",
        "--resume never silently restarts over existing checkpoints",
        RUN_DIR,
    ),
    m(
        "config-change-unchecked",
        "distgan/run_directory.py",
        "if blocked and not allowed:",
        "if False:",
        "a resume with another model/seed/data is accepted",
        RUN_DIR,
    ),
    m(
        "latest-may-be-a-path",
        "distgan/checkpoint/locate.py",
        "if not NAME.fullmatch(name):",
        "if not name:",
        "checkpoints/latest may name a path into another run",
        SECURITY,
    ),
    m(
        "no-stop-inside-critic-phase",
        "distgan/trainer.py",
        "if state.critic_steps < n_critic and stop.poll():",
        "if False:",
        "a signal waits for the end of a long critic phase",
        SIGNALS,
    ),
    m(
        "import-circle",
        "distgan/config/sections.py",
        "from distgan.errors import UserError\n",
        "from distgan.errors import UserError\n\n\ndef _circle():\n    from distgan import trainer  # noqa\n",
        "a function-level import that closes a circle",
        ARCH,
    ),
]


SPEC_KEYS = {"name", "file", "old", "new", "tests", "description"}
WHOLE_FAST_SUITE = ("tests",)


class SpecError(ValueError):
    """A --specs file that cannot be read as a list of mutations (the message names the entry)."""


def load_specs(path: Path) -> list[Mutation]:
    """The mutations of a --specs JSON file, checked entry by entry."""
    try:
        entries = json.loads(Path(path).read_text())
    except (OSError, ValueError) as err:
        raise SpecError(f"--specs {path}: cannot read a JSON list ({err})") from None
    if not isinstance(entries, list) or not entries:
        raise SpecError(f"--specs {path}: expected a non-empty JSON list of mutations")
    mutations, names = [], set()
    for i, entry in enumerate(entries):
        where = f"--specs {path}: entry {i}"
        if not isinstance(entry, dict):
            raise SpecError(f"{where} is not an object")
        missing = {"name", "file", "old", "new"} - entry.keys()
        unknown = entry.keys() - SPEC_KEYS
        if missing or unknown:
            problem = f"lacks {sorted(missing)}" if missing else f"has unknown keys {sorted(unknown)}"
            raise SpecError(f"{where} {problem}; keys: {', '.join(sorted(SPEC_KEYS))}")
        if not all(isinstance(entry[k], str) for k in ("name", "file", "old", "new")) or not entry["old"]:
            raise SpecError(f"{where}: name, file, old and new must be strings, old not empty")
        tests = entry.get("tests") or list(WHOLE_FAST_SUITE)
        if not isinstance(tests, list) or not all(isinstance(t, str) for t in tests):
            raise SpecError(f"{where}: tests must be a list of test paths")
        if entry["name"] in names:
            raise SpecError(f"{where}: the name {entry['name']!r} is used twice")
        names.add(entry["name"])
        description = entry.get(
            "description", f"{entry['file']}: {entry['old'][:40]!r} -> {entry['new'][:40]!r}"
        )
        mutations.append(m(entry["name"], entry["file"], entry["old"], entry["new"], description, tests))
    return mutations


def canary_for(mutations: list[Mutation], root: Path | None = None) -> Mutation:
    """A copy whose file raises at import: the first applicable mutation's file, with its tests."""
    root = REPO if root is None else root
    for mut in mutations:
        path = root / mut.path
        if path.is_file() and path.suffix == ".py" and path.read_text().count(mut.old) == 1:
            text = path.read_text()
            new = text + "\n\nraise RuntimeError('mutated copy')\n"
            return m("import-canary", mut.path, text, new, "the copy raises at import", mut.tests)
    return CANARY


def copy_repo(dest: Path) -> None:
    ignore = shutil.ignore_patterns(".venv", ".git", "runs", "__pycache__", ".pytest_cache", "*.egg-info")
    shutil.copytree(REPO, dest, ignore=ignore, symlinks=True)


def apply(mutation: Mutation, root: Path) -> str | None:
    """Mutate the copy in place; an error message when the snippet is not found exactly once."""
    path = root / mutation.path
    if not path.is_file():
        return f"file {mutation.path} not found"
    text = path.read_text()
    count = text.count(mutation.old)
    if count != 1:
        return f"snippet found {count} times in {mutation.path}"
    path.write_text(text.replace(mutation.old, mutation.new))
    return None


def run_tests(root: Path, tests: tuple[str, ...]) -> tuple[str, str, float]:
    """("passed" | "failed" | "no tests", last line of pytest's output, seconds). A hang is "failed"."""
    env = dict(
        os.environ,
        PYTHONPATH=f"{root}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
        OMP_NUM_THREADS="1",
        WANDB_MODE="disabled",
        HF_HUB_OFFLINE="1",
        PYTHONDONTWRITEBYTECODE="1",
    )
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-m", FAST, *tests]
    start = time.perf_counter()
    try:
        result = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return "failed", f"timeout after {TIMEOUT_S}s", time.perf_counter() - start
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    summary = lines[-1] if lines else result.stderr[-200:]
    first_failure = next((line for line in lines if line.startswith(("FAILED ", "ERROR "))), "")
    detail = f"{summary}; {first_failure[:140]}" if first_failure else summary
    seconds = time.perf_counter() - start
    if result.returncode in NOT_A_VERDICT:  # a wrong test path is not a caught mutation
        return "no tests", f"pytest exit {result.returncode}: {detail}", seconds
    return ("failed" if result.returncode else "passed"), detail, seconds


def check_baseline(tests: set[str], canary: Mutation = CANARY) -> None:
    """The unmutated copy must pass, or every mutation would look caught."""
    with tempfile.TemporaryDirectory(prefix="mutation-base-") as tmp:
        root = Path(tmp) / "repo"
        copy_repo(root)
        status, summary, seconds = run_tests(root, tuple(sorted(tests)))
        print(f"baseline: {summary} ({seconds:.0f}s)", flush=True)
        if status != "passed":
            sys.exit("baseline: the fast tests fail on the UNmutated copy; fix them first")
    with tempfile.TemporaryDirectory(prefix="mutation-canary-") as tmp:
        root = Path(tmp) / "repo"
        copy_repo(root)
        assert apply(canary, root) is None
        status, summary, _ = run_tests(root, canary.tests)
        print(f"canary (must fail): {summary}", flush=True)
        if status != "failed":
            sys.exit("canary: a copy that raises at import passed: the tests do not import the copy")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--list", action="store_true", help="print the mutations and exit")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run only these mutations")
    parser.add_argument("--no-baseline", action="store_true", help="skip the unmutated run")
    parser.add_argument(
        "--specs", type=Path, metavar="FILE.json", help="run this JSON list of mutations instead"
    )
    args = parser.parse_args(argv)
    chosen, canary = MUTATIONS, CANARY
    if args.specs:
        try:
            chosen = load_specs(args.specs)
        except SpecError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
    if args.only:
        names = {mut.name for mut in chosen}
        unknown = [n for n in args.only if n not in names]
        if unknown:
            print(
                f"error: unknown mutation {unknown[0]!r}; valid: {', '.join(sorted(names))}", file=sys.stderr
            )
            return 2
        chosen = [mut for mut in chosen if mut.name in args.only]
    if args.specs:
        canary = canary_for(chosen)
    if args.list:
        for mut in chosen:
            print(f"{mut.name:32} {mut.path:30} {mut.description}")
        return 0
    if not args.no_baseline:
        check_baseline({t for mut in chosen for t in mut.tests}, canary)
    rows = []
    for mut in chosen:
        with tempfile.TemporaryDirectory(prefix="mutation-") as tmp:
            root = Path(tmp) / "repo"
            copy_repo(root)
            problem = apply(mut, root)
            if problem:
                verdict, detail, seconds = "not applicable", problem, 0.0
            else:
                status, detail, seconds = run_tests(root, mut.tests)
                verdict = {"failed": "caught", "passed": "SURVIVED", "no tests": "no tests ran"}[status]
        rows.append((mut, verdict, detail))
        print(f"{mut.name:32} {verdict:15} {seconds:5.0f}s  {detail}", flush=True)
    print()
    print("| mutation | file | planted bug | result |")
    print("|---|---|---|---|")
    for mut, verdict, _ in rows:
        print(f"| {mut.name} | {mut.path} | {mut.description} | {verdict} |")
    caught = sum(verdict == "caught" for _, verdict, _ in rows)
    print(f"score: {caught}/{len(rows)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
