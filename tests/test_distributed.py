"""train.py under torchrun: two CPU processes (gloo) each train on a shard of every batch; rank 0 writes one
checkpoint that loads and scores like a single-process one, and --resume carries on a run."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import finished
from osr_core import training
from osr_core.recipe import Recipe
from osr_core.io import load_checkpoint
from osr_core.pipeline import load_trained, validation_images
from osr_core.scores import score_images


def predictions(checkpoint, data_dir) -> tuple[np.ndarray, np.ndarray]:
    trained = load_trained(checkpoint, torch.device("cpu"))
    images, labels = validation_images(trained, data_dir)
    return score_images(trained.model, images, trained.known_classes, trained.device).pred, labels.numpy()


@pytest.fixture(scope="module")
def ddp_checkpoint(background_runs):
    """An uninterrupted two-process run of TINY_RECIPE (the session's model is its one-process run), started with
    the session (conftest.background_runs)."""
    folder, stderr = finished(background_runs, "ddp")
    assert "2 processes" in stderr
    return folder / "ddp.pt"


def test_two_processes_train_one_checkpoint_that_scores_like_one_process(trained_run, data_dir, ddp_checkpoint):
    single, ddp = trained_run["checkpoint"], ddp_checkpoint
    a, b = load_checkpoint(single), load_checkpoint(ddp)
    assert a["recipe"] == b["recipe"]
    assert torch.equal(a["val_indices"], b["val_indices"]) and a["known_classes"] == b["known_classes"]
    assert [h["epoch"] for h in b["metrics"]["history"]] == [1, 2]
    pred_a, labels = predictions(single, data_dir)
    pred_b, _ = predictions(ddp, data_dir)
    # Each rank normalises its half batch with its own batch-norm statistics, so the runs differ slightly:
    # stated tolerance, 2 points of validation accuracy and 95% of the predictions the same.
    acc_a, acc_b = (pred_a == labels).mean(), (pred_b == labels).mean()
    assert acc_a > 0.9 and abs(acc_a - acc_b) < 0.02, (acc_a, acc_b)
    assert (pred_a == pred_b).mean() > 0.95


def test_torchrun_resumes_an_interrupted_run_to_the_same_weights(background_runs, ddp_checkpoint):
    """A two-process run interrupted by Ctrl-C once its first epoch is saved, then resumed under torchrun
    (tests/interrupted_run.py, started with the session), ends with the weights of the uninterrupted two-process run,
    bit for bit."""
    folder, stderr = finished(background_runs, "ddp_resumed")
    assert "resuming after epoch 1" in stderr
    assert not (folder / "model.pt.resume").exists()
    a, b = load_checkpoint(folder / "model.pt"), load_checkpoint(ddp_checkpoint)
    assert [h["epoch"] for h in a["metrics"]["history"]] == [1, 2]
    for key, value in b["state_dict"].items():
        assert torch.equal(value, a["state_dict"][key]), key


def test_each_rank_forwards_its_own_half_of_every_batch():
    """A rank that trained on the whole batch would still give a good model: only the batches show it."""
    from osr_core.distributed import World
    from osr_core.models import ModelConfig, build_model

    class LocalWorld(World):
        def sum(self, *values):  # no process group here: this rank's own numbers
            return list(values)
    images = (torch.rand(256, 28, 28, generator=torch.Generator().manual_seed(0)) * 255).to(torch.uint8)
    targets = torch.arange(256) % 3
    for rank in (0, 1):
        torch.manual_seed(0)
        model = build_model(ModelConfig(num_classes=3, width=4, latent_dim=8, feature_code_dim=4))
        rows = []
        model.encoder.register_forward_hook(lambda m, i, o: rows.append(i[0].shape[0]))
        optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0)
        stats = training.train_one_epoch(model, images, targets, optimizer, scheduler, Recipe(batch_size=64),
                                         torch.device("cpu"), torch.Generator().manual_seed(1), epoch=1,
                                         show_progress=False, world=LocalWorld(rank=rank, size=2))
        assert rows == [32, 32, 32, 32] and stats["train_accuracy"] <= 1.0
    x = torch.arange(10)
    assert LocalWorld(0, 2).shard(x).tolist() == [0, 2, 4, 6, 8] and LocalWorld(1, 2).shard(x).tolist() == [1, 3, 5, 7, 9]
