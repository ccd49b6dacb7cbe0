import pytest
import torch

from course_lib.core import profiles
from course_lib.core.device import get_device, seed_everything


def test_profiles_scale_up():
    ci, lec, full = (profiles.profile(n) for n in ("ci", "lecture", "full"))
    for field in ("image_size", "train_steps", "n_test", "optim_steps"):
        assert getattr(ci, field) < getattr(lec, field) < getattr(full, field), field


def test_profile_from_environment(monkeypatch):
    monkeypatch.setenv("COURSE_PROFILE", "lecture")
    assert profiles.profile().name == "lecture"
    monkeypatch.setenv("COURSE_PROFILE", "gpu")
    with pytest.raises(ValueError, match="COURSE_PROFILE='gpu' is not a profile"):
        profiles.profile()
    monkeypatch.delenv("COURSE_PROFILE")
    assert profiles.profile().name == ("full" if torch.cuda.is_available() else "lecture")


def test_profile_replace_validates():
    p = profiles.profile("ci").replace(train_steps=3)
    assert p.train_steps == 3 and p.name == "ci"
    with pytest.raises(TypeError, match="unknown field"):
        p.replace(epochs=3)


def test_device_choice():
    assert get_device("cpu").type == "cpu"
    if not torch.cuda.is_available():
        assert get_device().type in ("cpu", "mps")
        with pytest.raises(ValueError, match="CUDA was asked for"):
            get_device("cuda")


def test_seeding_repeats():
    seed_everything(5)
    a = torch.randn(3), torch.nn.Linear(3, 3).weight.detach().clone()
    seed_everything(5)
    b = torch.randn(3), torch.nn.Linear(3, 3).weight.detach().clone()
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    with pytest.raises(TypeError):
        seed_everything("1")
