"""The student-notebook builder and the exercise checks."""
import math

import nbformat
import pytest
import torch

from course_lib import exercises as ex
from course_lib.exercises.builder import build, build_student_notebook, out_of_sync, strip_solutions

INSTRUCTOR = '''import torch

def psnr(a, b):
    """doc"""
    # BEGIN SOLUTION
    mse = ((a - b) ** 2).mean()
    return 10 * torch.log10(1 / mse)
    # END SOLUTION

x = 1
# BEGIN SOLUTION: set y
y = 2
# END SOLUTION
print(x)'''


def test_strip_solutions_replaces_blocks_and_keeps_the_rest():
    out = strip_solutions(INSTRUCTOR)
    assert "mse =" not in out and "y = 2" not in out and "SOLUTION" not in out
    assert '    raise NotImplementedError("Exercise: psnr")' in out.splitlines()
    assert 'raise NotImplementedError("Exercise: set y")' in out.splitlines()
    kept = [l for l in INSTRUCTOR.splitlines() if l not in out.splitlines()]
    assert kept == ["    # BEGIN SOLUTION", "    mse = ((a - b) ** 2).mean()", "    return 10 * torch.log10(1 / mse)",
                    "    # END SOLUTION", "# BEGIN SOLUTION: set y", "y = 2", "# END SOLUTION"]
    compile(out, "student", "exec")  # still valid Python


def test_strip_solutions_rejects_broken_markers():
    with pytest.raises(ValueError, match="never closed"):
        strip_solutions("# BEGIN SOLUTION\nx = 1")
    with pytest.raises(ValueError, match="without a '# BEGIN SOLUTION'"):
        strip_solutions("x = 1\n# END SOLUTION")
    with pytest.raises(ValueError, match="nested"):
        strip_solutions("# BEGIN SOLUTION\n# BEGIN SOLUTION\n# END SOLUTION")


def make_nb():
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# 99 · Test\n\n# BEGIN SOLUTION in markdown stays"),
                nbformat.v4.new_code_cell(INSTRUCTOR),
                nbformat.v4.new_code_cell("print('kept')")]
    nb.cells[2].outputs = [nbformat.v4.new_output("stream", text="kept\n")]
    nb.cells[2].execution_count = 3
    return nb


def test_student_notebook_strips_code_and_clears_outputs(tmp_path):
    student = build_student_notebook(make_nb())
    assert "Student version" in student.cells[0].source
    assert "# BEGIN SOLUTION in markdown stays" in student.cells[0].source
    assert student.cells[1].source == strip_solutions(INSTRUCTOR)
    assert student.cells[2].source == "print('kept')" and student.cells[2].outputs == []
    src = tmp_path / "nb"
    src.mkdir()
    nbformat.write(make_nb(), src / "99_test.ipynb")
    assert out_of_sync(src) == [f"{src / 'student' / '99_test.ipynb'} is missing"]
    build(src)
    assert out_of_sync(src) == []
    nb = nbformat.read(src / "99_test.ipynb", as_version=4)
    nb.cells[2].source = "print('changed')"
    nbformat.write(nb, src / "99_test.ipynb")
    assert out_of_sync(src) == [f"{src / 'student' / '99_test.ipynb'} is out of date"]


# --- checks: each passes the reference and fails a plausible wrong answer -------------------

def test_check_rgb_to_y(capsys):
    from course_lib.core.images import rgb_to_y

    ex.check_rgb_to_y(rgb_to_y)
    assert "✓ rgb_to_y" in capsys.readouterr().out

    def full_range(x):  # JPEG's full-range luma: a common confusion
        return (0.299 * x[0] + 0.587 * x[1] + 0.114 * x[2]).unsqueeze(0)

    with pytest.raises(AssertionError, match="rgb_to_y output: values differ.*expected"):
        ex.check_rgb_to_y(full_range)
    with pytest.raises(AssertionError, match=r"expected shape \(1, 5, 7\), got \(5, 7\)"):
        ex.check_rgb_to_y(lambda x: rgb_to_y(x)[0])


def test_check_psnr():
    from course_lib.core.metrics import psnr

    ex.check_psnr(lambda a, b: psnr(a, b))
    with pytest.raises(AssertionError, match="psnr"):
        ex.check_psnr(lambda a, b: 10 * torch.log(1 / ((a - b) ** 2).mean()))  # natural log
    with pytest.raises(AssertionError, match="psnr"):
        ex.check_psnr(lambda a, b: 20 * torch.log10(1 / ((a - b) ** 2).mean()))  # 20 log of a power


def test_check_pixel_shuffle():
    ex.check_pixel_shuffle(torch.nn.functional.pixel_shuffle)

    def wrong(x, r):  # sub-pixel offsets taken in the wrong order
        n, c, h, w = x.shape
        return x.reshape(n, c // r ** 2, r, r, h, w).permute(0, 1, 4, 3, 5, 2).reshape(n, c // r ** 2, h * r, w * r)

    with pytest.raises(AssertionError, match="pixel_shuffle.*values differ"):
        ex.check_pixel_shuffle(wrong)


def test_unfinished_exercise_prints_not_done_yet_instead_of_a_second_traceback(capsys):
    def stub(x):
        raise NotImplementedError("Exercise: rgb_to_y")

    assert ex.check_rgb_to_y(stub) is None
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "rgb_to_y: not done yet" in out and "✓" not in out


def test_compare_reports_location_and_relative_error():
    with pytest.raises(AssertionError, match=r"At index \(1,\) expected 2, got 2.5.*max relative error 0.25"):
        ex.compare("out", torch.tensor([1.0, 2.5]), torch.tensor([1.0, 2.0]))
    ex.compare("out", torch.tensor([1.0, math.inf]), torch.tensor([1.0, math.inf]))


def test_check_gram_matrix():
    from course_lib.style.losses import gram_matrix

    ex.check_gram_matrix(gram_matrix)

    def unnormalised(f):  # forgets to divide by C*H*W
        n, c, h, w = f.shape
        x = f.reshape(n, c, h * w)
        return x @ x.transpose(1, 2)

    with pytest.raises(AssertionError, match="gram_matrix.*values differ"):
        ex.check_gram_matrix(unnormalised)

    def spatial(f):  # (HW x HW) instead of (C x C)
        n, c, h, w = f.shape
        x = f.reshape(n, c, h * w)
        return x.transpose(1, 2) @ x / (c * h * w)

    with pytest.raises(AssertionError, match="expected shape"):
        ex.check_gram_matrix(spatial)


def test_check_soft_jaccard_loss():
    from course_lib.segmentation.losses import soft_jaccard_loss

    ex.check_soft_jaccard_loss(lambda q, p: soft_jaccard_loss(q, p, from_logits=False))

    def per_image(q, p):
        inter = (q * p).sum((1, 2, 3))
        return (1 - inter / (q.sum((1, 2, 3)) + p.sum((1, 2, 3)) - inter)).mean()

    ex.check_soft_jaccard_loss(per_image)  # the plain formula, no smoothing term, passes
    with pytest.raises(AssertionError, match="soft_jaccard_loss"):
        ex.check_soft_jaccard_loss(lambda q, p: 1 - (q * p).sum() / (q.sum() + p.sum() - (q * p).sum()))  # pooled
    with pytest.raises(AssertionError, match="soft_jaccard_loss"):  # Dice, not Jaccard
        ex.check_soft_jaccard_loss(lambda q, p: (1 - 2 * (q * p).sum((1, 2, 3)) / (q.sum((1, 2, 3)) + p.sum((1, 2, 3)))).mean())
    with pytest.raises(AssertionError, match="gradients"):
        ex.check_soft_jaccard_loss(lambda q, p: torch.tensor(per_image(q.detach(), p).item()))


def test_check_pyramid_pooling():
    import torch.nn.functional as F

    from course_lib.segmentation.pspnet import pyramid_pooling

    ex.check_pyramid_pooling(pyramid_pooling)

    def nearest(x, convs, bins):
        return torch.cat([x] + [F.interpolate(c(F.adaptive_avg_pool2d(x, b)), size=x.shape[-2:], mode="nearest")
                                for b, c in zip(bins, convs)], 1)

    def corners(x, convs, bins):
        return torch.cat([x] + [F.interpolate(c(F.adaptive_avg_pool2d(x, b)), size=x.shape[-2:], mode="bilinear",
                                              align_corners=True) for b, c in zip(bins, convs)], 1)

    def no_input(x, convs, bins):
        return pyramid_pooling(x, convs, bins)[:, x.shape[1]:]

    for wrong in (nearest, corners, no_input):
        with pytest.raises(AssertionError, match="pyramid_pooling"):
            ex.check_pyramid_pooling(wrong)


def test_check_hio_step():
    from course_lib.phase.classical import hio_step

    ex.check_hio_step(hio_step)

    def no_box(x, y, support, beta):  # forgets the [0, 1] box: only support and non-negativity
        return hio_step(x, y, support, beta, constraints=("support", "real", "nonneg"))

    def er_step(x, y, support, beta):  # error reduction instead of HIO: no feedback
        z = torch.fft.fft2(x, norm="ortho")
        xp = torch.fft.ifft2(y * torch.exp(1j * z.angle()), norm="ortho").real
        return xp.clamp(0, 1) * support

    def unnormalised(x, y, support, beta):  # the default fft norm: magnitudes on another scale
        z = torch.fft.fft2(x)
        xp = torch.fft.ifft2(y * torch.exp(1j * z.angle())).real
        p = xp.clamp(0, 1) * support
        return torch.where(p == xp, xp, x - beta * (xp - p))

    for wrong in (no_box, er_step, unnormalised):
        with pytest.raises(AssertionError, match="hio_step"):
            ex.check_hio_step(wrong)


def test_check_rotation_invariant_loss(capsys):
    from course_lib.phase.prdad import rotation_invariant_loss

    ex.check_rotation_invariant_loss(rotation_invariant_loss)

    def mine(pred, x):  # written out independently: two MSEs per image, the smaller, the mean
        a = ((pred - x) ** 2).flatten(1).mean(1)
        b = ((pred.flip(-2).flip(-1) - x) ** 2).flatten(1).mean(1)
        return torch.stack([a, b]).min(0).values.mean()

    ex.check_rotation_invariant_loss(mine)

    def plain_mse(pred, x):  # forgets the twin
        return ((pred - x) ** 2).mean()

    def transposed(pred, x):  # a transpose is not the 180° rotation
        a = ((pred - x) ** 2).flatten(1).mean(1)
        b = ((pred.transpose(-2, -1) - x) ** 2).flatten(1).mean(1)
        return torch.minimum(a, b).mean()

    def batch_min(pred, x):  # the minimum over the whole batch instead of per image
        return torch.minimum(((pred - x) ** 2).mean(), ((pred.flip(-2, -1) - x) ** 2).mean())

    def detached(pred, x):
        return torch.tensor(float(mine(pred.detach(), x)))

    for wrong in (plain_mse, transposed, batch_min, detached):
        with pytest.raises(AssertionError, match="rotation_invariant_loss"):
            ex.check_rotation_invariant_loss(wrong)

    def stub(pred, x):
        raise NotImplementedError

    ex.check_rotation_invariant_loss(stub)
    assert "rotation_invariant_loss: not done yet" in capsys.readouterr().out
