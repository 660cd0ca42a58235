import pytest
import torch

from hitrank.errors import ConfigError
from hitrank.losses import all_pairs_ranking_loss, multi_loss, ranking_loss
from hitrank.models import available, build


def test_registry():
    assert {"simple_cnn", "siamese"} <= set(available())
    with pytest.raises(ConfigError, match="not a known model"):
        build("resnet")
    with pytest.raises(ConfigError, match="bad model.kwargs"):
        build("simple_cnn", nonsense=1)


def test_simple_cnn_layer_shapes():
    m = build("simple_cnn").eval()
    x = torch.randn(3, 128, 323)
    h = x
    shapes = []
    for layer in m.net:
        h = layer(h)
        if isinstance(layer, (torch.nn.Conv1d, torch.nn.MaxPool1d)):
            shapes.append(tuple(h.shape[1:]))
    assert shapes == [(32, 320), (32, 160), (64, 157), (64, 78), (256, 78), (256, 78), (1, 78)]
    assert m(x).shape == (3,)


def test_siamese_shares_weights():
    m = build("siamese", scorer="simple_cnn").eval()
    x = torch.randn(4, 128, 323)
    fi, fj = m.pair(x[:2], x[2:])
    torch.testing.assert_close(torch.cat([fi, fj]), m(x))


def test_ranking_loss_definition():
    fi, fj = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    yi, yj = torch.tensor([2.0, 2.0]), torch.tensor([1.0, 1.0])
    # pair 1 ranked right by 1.0 (margin 0.5 met -> 0); pair 2 wrong by 1.0 -> 1.5
    assert ranking_loss(fi, fj, yi, yj, 0.5).item() == pytest.approx(0.75)
    assert multi_loss(fi, fj, yi, yj, 0.0, 0.5).item() == pytest.approx(
        torch.mean((torch.cat([fi, fj]) - torch.cat([yi, yj])) ** 2).item())
    p = torch.tensor([3.0, 2.0, 1.0])
    assert all_pairs_ranking_loss(p, p, 0.5).item() == pytest.approx(0.0)
