"""The shared core: profiles, device, training loop, checkpoints, images,
datasets registry, metrics and plotting. Units import from here; core never
imports a unit."""
from .device import describe_environment, get_device, seed_everything
from .profiles import Profile, profile

__all__ = ["profile", "Profile", "get_device", "seed_everything", "describe_environment",
           "setup_notebook"]


def setup_notebook(seed: int = 0, quiet: bool = False) -> dict:
    """What every notebook's first cell calls: seed, pick the device, report.

    Prints the versions, device and profile, and, when no GPU is present on
    Colab, how to switch one on. Returns the environment description.
    """
    import sys

    seed_everything(seed)
    info = describe_environment()
    if not quiet:
        print(f"course_lib {__import__('course_lib').__version__} | torch {info['torch']} | "
              f"device {info['device']}{' (' + info['gpu'] + ')' if 'gpu' in info else ''} | "
              f"profile {info['profile']} | {info['cpu_count']} CPU cores")
        if info["device"] == "cpu":
            if "google.colab" in sys.modules:
                print("No GPU: on Colab choose Runtime > Change runtime type > T4 GPU, then rerun.")
            else:
                print(f"Running on the CPU with the '{info['profile']}' profile's sizes "
                      "(COURSE_PROFILE=full on a GPU machine gives the published sizes).")
    return info
