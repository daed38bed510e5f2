"""Files a run writes: never half-written (written aside, then renamed over the old one), never
overwritten (an earlier result keeps its step in its name), and one writer per run directory (a
lock that dies with its process). plot.py writes its figures and tables the same way."""

import contextlib
import fcntl
import json
import os
import socket
import tempfile
import time
import weakref

from run_utils.cli import RunFailed, UsageError


def atomic_write(path: str, write) -> None:
    """`write(file)` into a temporary file with a name of its own next to `path`, flushed to disk,
    then renamed over `path`, and the rename flushed too: `path` is always either the old file or
    the whole new one, also after a crash or a power cut. On any error (a full disk, a signal) the
    temporary file is removed and `path` is left as it was."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    umask = os.umask(0)
    os.umask(umask)
    os.fchmod(fd, 0o666 & ~umask)  # as open() would make it (mkstemp's files are private)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_directory(directory)


def fsync_directory(directory: str) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_save(obj, path: str) -> None:
    import torch  # (plot.py and sweep.py use this module without torch)

    atomic_write(path, lambda f: torch.save(obj, f))


def atomic_write_json(obj, path: str) -> None:
    atomic_write(path, lambda f: f.write(json.dumps(obj, indent=2).encode()))


def keep_earlier(path: str, step: int, step_of) -> None:
    """Before `path` is written for `step`: if it holds the result of another step (`step_of(path)`),
    move it to `stem.step{that step}.ext`, so that `path` is always the latest and nothing is lost."""
    if os.path.exists(path) and (earlier := step_of(path)) != step:
        stem, ext = os.path.splitext(path)
        os.replace(path, free_path(f"{stem}.step{earlier}{ext}"))


def lock_run_directory(directory: str):
    """An exclusive lock on `directory` for the life of this process (released by the kernel when it
    ends, however it ends), or one line naming the process that holds it."""
    path = os.path.join(directory, ".lock")
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
        os.close(fd)
        raise UsageError(f"{directory} is in use by {holder}: one run directory, one writer") from None
    except OSError as error:  # ENOLCK, ENOSYS, EOPNOTSUPP: a file system without flock (some NFS, Lustre)
        os.close(fd)
        raise RunFailed(f"cannot lock {directory} ({error.strerror}): its file system does not support flock; "
                        "run on a local disk, or mount it with flock support") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"process {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
    return fd


def evaluated_step(path: str):
    """The step an eval.json was written at."""
    with open(path) as f:
        return json.load(f)["global_step"]


def free_path(path: str) -> str:
    """`path` if nothing is there yet, else `stem.1.ext`, `stem.2.ext`, ...: never overwrite."""
    stem, ext = os.path.splitext(path)
    candidate, n = path, 0
    while os.path.exists(candidate):
        n += 1
        candidate = f"{stem}.{n}{ext}"
    return candidate


class RunDirectory:
    """Where a run writes, locked for its one writer: with --resume the checkpoint's directory,
    locked at once; else a new one, --run-dir (new or empty) or runs/{env}__{exp_name}__{seed}__{unix
    time}, made and locked by `make` once the environment exists."""

    def __init__(self, args):
        self.args, self.lock = args, None
        if args.resume:
            self.path = os.path.dirname(os.path.abspath(args.resume))
            self.take()  # before reading: the checkpoint is ours now
        else:
            self.path = self.new_path(args)

    @property
    def name(self) -> str:
        return os.path.basename(self.path)

    @property
    def checkpoint_file(self) -> str:
        return os.path.join(self.path, "checkpoint.pt")

    def file(self, name: str) -> str:
        return os.path.join(self.path, name)

    def take(self) -> None:
        """The lock, held until `release`, until this object is garbage (an error in a caller that runs
        several scripts' `main` in one process), or until the process ends."""
        self.lock = weakref.finalize(self, os.close, lock_run_directory(self.path))

    def release(self) -> None:
        if self.lock is not None:
            self.lock()

    @staticmethod
    def new_path(args) -> str:
        """--run-dir (new or empty), or runs/{env}__{exp_name}__{seed}__{unix time}. A module:Id env is
        named by its Id (no colon in the directory's name)."""
        if args.run_dir:
            directory = os.path.abspath(args.run_dir)
            if os.path.exists(os.path.join(directory, "checkpoint.pt")):
                raise UsageError(f"{args.run_dir} already holds a run; continue it with --resume {args.run_dir}, "
                                 "or choose another --run-dir")
            if os.path.isdir(directory) and os.listdir(directory):
                raise UsageError(f"{args.run_dir} is not empty; choose another --run-dir")
            return directory
        env = args.env_id.split(":")[-1].replace("/", "-")
        return os.path.abspath(os.path.join("runs", f"{env}__{args.exp_name}__{args.seed}__{int(time.time())}"))

    def make(self) -> None:
        """Create the new run's directory and lock it. Two runs started in the same second get two
        directories (`name.1`, ...); a --run-dir that another process took meanwhile is refused."""
        if self.args.run_dir:
            os.makedirs(self.path, exist_ok=True)
        else:
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
            stem = self.path
            for n in range(1000):
                self.path = stem if n == 0 else f"{stem}.{n}"
                with contextlib.suppress(FileExistsError):
                    os.mkdir(self.path)
                    break
            else:
                raise RunFailed(f"cannot create a run directory {stem}.N")
        self.take()
        if os.path.exists(self.checkpoint_file):  # another process was faster
            raise UsageError(f"{self.path} already holds a run; continue it with --resume {self.path}")
