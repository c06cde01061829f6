"""A fit killed at random moments, again and again, ends bit-for-bit like an uninterrupted one.

A driver process imports pretune once and forks a child per attempt (each child a fresh fit or
a resume, as a user would rerun it); the child dies by os._exit at a random step of a random
event, or in the middle of writing a checkpoint (after a random number of its files). Every
child starts from the same process history, so an equal result is the promise, not luck.
"""

import json
import subprocess
import sys
import textwrap

from tests.conftest import sentiment_frame, tiny_recipe

DRIVER = textwrap.dedent("""
    import json, os, random, sys, traceback
    from pathlib import Path

    import pretune
    from pretune.train import checkpoints, run_callbacks
    from pretune.train.fit import fit

    # Imported once here, not in every child: the children then only train. (Imports only: the
    # driver computes nothing, so forking it is safe.)
    import pretune.data, pretune.tasks, transformers.models.bert.modeling_bert  # noqa: F401

    recipe, root, seed, wanted = json.loads(sys.argv[1])
    root, rng = Path(root), random.Random(seed)
    EVENTS = ["on_batch_end", "on_evaluate", "on_epoch_end", "checkpoint write"]

    def child(out, command, kind, target):
        if kind == "checkpoint write":  # die after `target` of the next save's files are written
            save, hash_file, seen = run_callbacks.save_checkpoint, checkpoints._sha256, [0]
            def saving(*args, **kwargs):
                seen[0] = max(seen[0], 1)
                return save(*args, **kwargs)
            def dying(path):
                if seen[0]:
                    seen[0] += 1
                    if seen[0] > target:
                        os._exit(9)
                return hash_file(path)
            run_callbacks.save_checkpoint, checkpoints._sha256 = saving, dying
            callbacks = []
        elif kind is None:
            callbacks = []
        else:
            def die(self, state):
                if state.step >= target:
                    os._exit(9)
            callbacks = [type("Kill", (), {kind: die})()]
        try:
            if command == "resume":
                fit(resume=out, callbacks=callbacks, quiet=True)
            else:
                fit(recipe, out, callbacks=callbacks, quiet=True)
        except BaseException:
            traceback.print_exc()
            os._exit(3)
        os._exit(0)

    def attempt(out, command, kind=None, target=None):
        pid = os.fork()
        if pid == 0:
            child(out, command, kind, target)
        return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])

    def outcome(out):
        run = pretune.load_run(out)
        history = [{k: v for k, v in r.items() if k not in ("samples_per_second", "train_seconds")}
                   for r in run.history]
        return {"test": run.metrics["test"], "validation": run.metrics["validation"], "history": history}

    assert attempt(root / "whole", "fit") == 0
    reference = outcome(root / "whole")
    total = json.loads((root / "whole" / "metrics.json").read_text())["train"]["steps"]
    kills, plan, finished, chain = 0, [], [], 0
    out = root / "chain-0"
    while kills < wanted or not (out / "metrics.json").is_file():
        if (out / "metrics.json").is_file():  # finished before the next kill: start another chain
            chain += 1
            out = root / f"chain-{chain}"
        saved = [int(p.name[5:]) for p in (out / "checkpoints").glob("step-*")]
        if not (out / "recipe.yaml").is_file():
            command = "fit"
        elif not saved:
            command = rng.choice(["fit", "resume"])  # either works on a run with no checkpoint yet
        else:
            command = "resume"
        if kills >= wanted:
            kind = target = None
        else:
            kind = rng.choice(EVENTS)
            first = min(max(saved, default=0) + 1, total)
            target = rng.randint(1, 5) if kind == "checkpoint write" else rng.randint(first, total)
        code = attempt(out, command, kind, target)
        plan.append([out.name, command, kind, target, code])
        print(plan[-1], file=sys.stderr, flush=True)
        if code == 9:
            kills += 1
        elif code != 0:
            sys.exit(f"attempt {plan[-1]} failed")
        if (out / "metrics.json").is_file():
            finished.append(out.name)
    equal = {name: outcome(root / name) == reference for name in finished}
    print(json.dumps({"kills": kills, "plan": plan, "equal": equal, "total_steps": total}))
""")


def test_random_kills_end_like_an_uninterrupted_fit(tmp_path, tiny_model_dir):
    data = tmp_path / "data.csv"
    sentiment_frame(120).to_csv(data, index=False)
    recipe = tiny_recipe(tiny_model_dir, data, epochs=2, checkpoint_every_steps=2, keep_checkpoints=2)
    proc = subprocess.run([sys.executable, "-c", DRIVER, json.dumps([recipe, str(tmp_path), 16, 10])],
                          capture_output=True, text=True, timeout=1500)
    assert proc.returncode == 0, proc.stderr[-4000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    print(json.dumps(summary["plan"]))
    assert summary["kills"] >= 10
    assert summary["equal"] and all(summary["equal"].values()), summary
    kinds = {kind for _, _, kind, _, code in summary["plan"] if code == 9}
    assert len(kinds) >= 3, summary["plan"]  # the kills fell at different kinds of moment
