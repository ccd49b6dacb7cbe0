"""train_network: the loss against the nearer twin, fresh draws every step, resume, PR-DAD II's two stages."""
import pytest
import torch

from course_lib.phase.data import load_images
from course_lib.phase.losses import rotation_invariant_loss
from course_lib.phase.train import PhaseLoss, Redrawn, cosine_schedule, train_network
from course_lib.phase.data import PhaseDataset

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def digits():
    return load_images("mnist-offline", split="train", limit=96)


def test_phase_loss_image_part_is_the_rotation_invariant_mse_plus_mae():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(4, 1, 8, 8, generator=g)
    pred = torch.rand(4, 1, 8, 8, generator=g)
    pred[1] = torch.rot90(x[1], 2, dims=(-2, -1))  # exactly the twin: no error on that image
    loss, logs = PhaseLoss(l1_weight=0.0)(pred, x)
    # per image the nearer twin by MSE == rotation_invariant_loss's per-image minimum here
    assert float(loss) == pytest.approx(float(rotation_invariant_loss(pred, x)), rel=1e-6)
    loss1, _ = PhaseLoss(l1_weight=1.0)(pred, x)
    assert float(loss1) > float(loss)


def test_phase_loss_adds_the_encoding_term_on_the_nearer_twin():
    from course_lib.phase.wavelets import haar_packet

    x = torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    twin = torch.rot90(x, 2, dims=(-2, -1))
    loss, logs = PhaseLoss(lambda t: haar_packet(t, 1))((twin, haar_packet(twin, 1)), x)
    assert float(loss) < 1e-10 and float(logs["feature_mse"]) < 1e-10


def test_redrawn_gives_new_noise_each_pass_and_is_reproducible(digits):
    ds = PhaseDataset(digits[:4], pad=2, noise="poisson:3", seed=0)
    r = Redrawn(ds, 3)
    assert len(r) == 12
    y0, x0 = r[1]
    y1, x1 = r[5]  # the same image, the next pass
    assert torch.equal(x0, x1) and not torch.equal(y0, y1)
    assert torch.equal(r[5][0], y1)


def test_cosine_schedule_falls_to_zero():
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    sched = cosine_schedule(10)(opt)
    lrs = []
    for _ in range(10):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[0] == 1.0 and lrs == sorted(lrs, reverse=True)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)
    assert lrs[5] == pytest.approx(0.5)


def test_train_network_learns_and_resumes(digits, tmp_path):
    train, val = digits[:80], digits[80:]
    ckpt = tmp_path / "run.pt"
    model, result, ae = train_network("mlp", train, val, pad=2, steps=30, batch_size=16, hidden=64,
                                      eval_every=30, checkpoint=ckpt, progress=False)
    assert ae is None and result.step == 30 and ckpt.is_file()
    first = result.history["train"][0]["loss"]
    last = result.history["train"][-1]["loss"]
    assert last < first
    # calling again with the same settings resumes from step 30 (here: nothing left to train)
    model2, result2, _ = train_network("mlp", train, val, pad=2, steps=30, batch_size=16, hidden=64,
                                       eval_every=30, checkpoint=ckpt, progress=False)
    assert result2.resumed_from == 30 and result2.step == 30 and len(result2.history["train"]) == 30
    # more steps is another training (the cosine schedule spans them): refused, not silently continued
    with pytest.raises(ValueError, match="different training.*schedule: 'cosine to 0 over 30 steps' in the "
                                         "checkpoint, 'cosine to 0 over 40 steps' now"):
        train_network("mlp", train, val, pad=2, steps=40, batch_size=16, hidden=64, eval_every=40,
                      checkpoint=ckpt, progress=False)


def test_train_network_prdad2_pretrains_then_freezes_the_autoencoder(digits, tmp_path):
    model, result, ae = train_network("prdad2", digits[:64], None, pad=1, steps=6, ae_steps=4, batch_size=16,
                                      hidden=32, checkpoint=tmp_path / "r.pt", progress=False)
    assert ae.step == 4 and result.step == 6
    assert (tmp_path / "r_autoencoder.pt").is_file()
    assert not any(p.requires_grad for p in model.autoencoder.parameters())


@pytest.mark.parametrize("kwargs, match", [
    (dict(method="unet"), "method must be one of"),
    (dict(train_x=torch.rand(5, 3, 8, 8)), "at least 2 grey images"),
    (dict(train_x=torch.rand(5, 1, 8, 12)), "square"),
    (dict(val_x=torch.rand(2, 1, 12, 12)), "val_x must be images of the same size"),
    (dict(steps=0), "steps must be an int >= 1"),
    (dict(augment=2.0), r"augment \(a probability\) must be"),
    (dict(noise="poisson"), "poisson:ALPHA"),
])
def test_train_network_bad_arguments(kwargs, match):
    args = dict(method="mlp", train_x=torch.rand(5, 1, 8, 8), val_x=None)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        train_network(args.pop("method"), args.pop("train_x"), args.pop("val_x"), steps=args.pop("steps", 2),
                      progress=False, **args)
