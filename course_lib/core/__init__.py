"""The shared core: profiles, device, training loop, checkpoints, images, datasets registry, metrics
and plotting. Units import from here; core never imports a unit."""
import os
import sys

from .device import describe_environment, get_device, seed_everything
from .profiles import Profile, profile

__all__ = ["profile", "Profile", "get_device", "seed_everything", "describe_environment",
           "setup_notebook", "colab_storage"]

COLAB_CACHE = "/content/course_data"
DRIVE_MOUNT = "/content/drive"
DRIVE_CACHE = "/content/drive/MyDrive/course_data"


def colab_storage(drive: bool = False) -> str:
    """On Colab, where data and run checkpoints go (sets ``COURSE_DATA`` unless the user already did).

    ``/content/course_data`` survives a reconnect to the same runtime but not a new runtime;
    ``drive=True`` (or ``COURSE_DRIVE=1``) mounts Google Drive and uses ``MyDrive/course_data``, which
    survives both. Never Drive under CI (``CI`` set): a test must not ask for an account.
    """
    if os.environ.get("COURSE_DATA"):
        return f"data and checkpoints in {os.environ['COURSE_DATA']} (COURSE_DATA)"
    drive = drive or os.environ.get("COURSE_DRIVE", "") not in ("", "0")
    note = " (Drive not mounted under CI)" if drive and os.environ.get("CI") else ""
    if drive and not note:
        from google.colab import drive as colab_drive

        colab_drive.mount(DRIVE_MOUNT)
        os.environ["COURSE_DATA"] = DRIVE_CACHE
        return f"data and checkpoints in {DRIVE_CACHE} on your Google Drive: a new runtime resumes from them"
    os.environ["COURSE_DATA"] = COLAB_CACHE
    return (f"data and checkpoints in {COLAB_CACHE}{note}: kept while this runtime lives; "
            "setup_notebook(drive=True) keeps them on Google Drive across runtimes")


def setup_notebook(seed: int = 0, quiet: bool = False, drive: bool = False) -> dict:
    """What every notebook's first cell calls: seed, pick the device, report.

    Prints the versions, device and profile, and, when no GPU is present on Colab, how to switch one
    on. On Colab it also chooses where data and run checkpoints go (:func:`colab_storage`;
    ``drive=True`` opts in to Google Drive). Returns the environment description.
    """
    seed_everything(seed)
    on_colab = "google.colab" in sys.modules
    storage = colab_storage(drive) if on_colab else None
    info = describe_environment()
    if not quiet:
        print(f"course_lib {__import__('course_lib').__version__} | torch {info['torch']} | "
              f"device {info['device']}{' (' + info['gpu'] + ')' if 'gpu' in info else ''} | "
              f"profile {info['profile']} | {info['cpu_count']} CPU cores")
        if info["device"] == "cpu":
            if on_colab:
                print("No GPU: on Colab choose Runtime > Change runtime type > T4 GPU, then rerun.")
            else:
                print(f"Running on the CPU with the '{info['profile']}' profile's sizes "
                      "(COURSE_PROFILE=full on a GPU machine gives the published sizes).")
        if storage:
            print(storage)
    return info
