"""The progress of a run on stderr: steps, steps per second, ETA, and once how long the run takes."""

import sys
import time
from collections import deque


def format_duration(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


class Progress:
    """Steps, steps per second and ETA, over the last minute (not since the start: the random
    warm-up is many times faster than learning). A bar redrawn in place on a terminal; a plain
    line every 5% or every minute, whichever comes first, in a log file. Once learning has run
    for a while, one line says how long the whole run is going to take."""

    WINDOW = 60.0  # seconds of history behind the rate

    def __init__(self, total: int, start: int, learning_starts: int):
        self.total, self.learning_starts, self.tty = total, learning_starts, sys.stderr.isatty()
        now = time.time()
        self.history = deque([(now, start)])  # (time, step), one sample a second
        self.last_print, self.next_plain = now, start + max(1, total // 20)
        self.learning_since, self.duration_said = None, False

    def sps(self) -> float:
        then, step_then = self.history[0]
        now, step_now = self.history[-1]
        return (step_now - step_then) / (now - then) if now > then else 0.0

    def update(self, step: int, recent_return: float | None) -> None:
        now = time.time()
        if now - self.history[-1][0] < 1.0 and step < self.total:
            return
        self.history.append((now, step))
        while len(self.history) > 2 and now - self.history[1][0] > self.WINDOW:
            self.history.popleft()
        if step > self.learning_starts and self.learning_since is None:
            self.learning_since = (now, step)
            self.history = deque([(now, step)])  # the rate of learning, not of the warm-up
            return
        self.say_duration(now, step)
        if self.tty and now - self.last_print < 0.5 and step < self.total:
            return
        if not self.tty and step < self.next_plain and now - self.last_print < 60 and step < self.total:
            return
        self.last_print = now
        while self.next_plain <= step:
            self.next_plain += max(1, self.total // 20)
        sps = self.sps()
        eta = format_duration((self.total - step) / sps) if sps > 0 else "-"
        ret = "-" if recent_return is None else f"{recent_return:.1f}"
        text = f"step {step}/{self.total} ({100 * step / self.total:.0f}%) | {sps:.0f} SPS | return {ret} | ETA {eta}"
        if self.tty:
            bar = "#" * int(20 * step / self.total)
            print(f"\r[{bar:<20}] {text}\033[K", end="", file=sys.stderr, flush=True)  # \033[K: clear the rest
        else:
            print(text, file=sys.stderr, flush=True)

    def say_duration(self, now: float, step: int) -> None:
        """Once, after 30 s of learning: the time the rest of the run is going to take."""
        if self.duration_said or self.learning_since is None or now - self.learning_since[0] < 30:
            return
        self.duration_said = True
        sps = self.sps()
        if sps <= 0 or step >= self.total:
            return
        rest = (self.total - step) / sps
        finish = time.strftime("%a %H:%M", time.localtime(now + rest))
        line = (f"learning at {sps:.0f} steps/s: the remaining {self.total - step} steps take about "
                f"{format_duration(rest)} (h:mm:ss), done around {finish}")
        print(("\r" if self.tty else "") + line + ("\033[K" if self.tty else ""), file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.tty:
            print(file=sys.stderr)
