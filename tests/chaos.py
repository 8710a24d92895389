"""kill -9 at random moments: start a command, wait until it is busy, kill it after a seeded random delay."""
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class KillLog:
    "What a chaos run did: one entry a start of the command, its delay and whether the kill landed."
    events: list[dict] = field(default_factory=list)

    @property
    def kills(self) -> int: return sum(e["killed"] for e in self.events)

    def __str__(self):
        return "; ".join(f"{'killed' if e['killed'] else 'finished'} after {e['delay']:.2f}s{' ' + e['note'] if e['note'] else ''}"
                         for e in self.events)


def tao_nb_process(*args, log: Path, **kw) -> subprocess.Popen:
    "Start the CLI with its standard error (the log) going to `log`, which `logged` reads while it runs."
    with open(log, "w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "tao_nb.cli", *map(str, args)], stdout=subprocess.DEVNULL, stderr=err,
                                env={**os.environ, "TAO_NB_PROGRESS": "1"}, **kw)
    proc.log = Path(log)
    return proc


def logged(text: str):
    "A `busy` condition: the process has written `text` to its log (it is past its imports and set-up)."
    return lambda proc: text in proc.log.read_text(errors="replace")


def wait_for(condition, timeout: float = 300, proc: subprocess.Popen | None = None) -> bool:
    "Poll `condition` until it holds; False when `proc` ended first or the time ran out."
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition(): return True
        if proc is not None and proc.poll() is not None: return False
        time.sleep(0.05)
    return False


def run_with_kills(start, busy, rng: random.Random, max_delay: float, kills: int, check, log: KillLog,
                   note=lambda: "") -> subprocess.Popen:
    """Start the command (`start()` -> Popen) again and again, killing it `kills` times at a random moment.

    Each start waits until `busy(proc)` holds (the command is past its imports and doing the work), then waits a random
    `0..max_delay` seconds and sends SIGKILL; `check()` runs after every kill. A start that finishes before its kill
    is let be. After the kills the command runs to the end; its Popen is returned."""
    for _ in range(kills):
        proc = start()
        wait_for(lambda: busy(proc), proc=proc)
        delay = rng.uniform(0, max_delay)
        ended = wait_for(lambda: proc.poll() is not None, timeout=delay)
        if not ended:
            proc.send_signal(signal.SIGKILL)
        proc.wait()
        log.events.append({"delay": delay, "killed": not ended, "note": note()})
        if ended: assert proc.returncode == 0, proc.log.read_text()
        check()
        if ended: return proc
    proc = start()
    proc.wait()
    return proc


def files_under(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}
