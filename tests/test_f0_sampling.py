"""The f0 sampler's nucleus draw (partial sort of the top bins) against a plain full-sort reference, and
the whole sampler against a GRU run by torch on the bins it drew."""
import numpy as np
import pytest
import torch

from midi_ddsp.synthesis import f0_sampling
from midi_ddsp.synthesis.f0_sampling import _nucleus_draw, sample_gru_categorical


def reference_draw(logits, inv_t, top_p, u):
    out = []
    for row, ui in zip(logits, u):
        order = np.argsort(-row, kind="stable")
        p = np.exp((row[order] - row[order[0]]) * inv_t)
        cum = np.cumsum(p)
        keep = (cum - p) < top_p * cum[-1]
        cdf = np.cumsum(np.where(keep, p, 0.0))
        out.append(order[min(int((cdf < ui * cdf[-1]).sum()), row.size - 1)])
    return np.array(out)


@pytest.mark.parametrize("spread", [0.3, 3.0, 30.0])  # flat (wide nucleus: the full-sort path) .. peaked
@pytest.mark.parametrize("top_p", [0.5, 0.95, 1.0])
def test_nucleus_draw_equals_a_full_sort(spread, top_p):
    rng = np.random.default_rng(int(spread * 10) + int(top_p * 100))
    logits = rng.standard_normal((64, 401)) * spread
    u = rng.random(64)
    got = _nucleus_draw(logits, 1.25, top_p, u, np.arange(64))
    np.testing.assert_array_equal(got, reference_draw(logits, 1.25, top_p, u))


def test_sampler_follows_the_gru_it_was_given(monkeypatch):
    """Feed the drawn bins back through torch's GRU (teacher forcing): at each step the drawn bin must be the
    one the reference draw picks from those logits; with a tiny TOP_K the full-sort path is taken too."""
    torch.manual_seed(0)
    cond_w, hidden, bins, steps, batch = 6, 16, 41, 30, 3
    gru, emb, out = torch.nn.GRU(cond_w + 4, hidden, batch_first=True), torch.nn.Embedding(bins, 4), \
        torch.nn.Linear(hidden, bins)
    cond = torch.randn(batch, steps, cond_w)
    u = np.random.default_rng(1).random((batch, steps))
    w_ih = gru.weight_ih_l0.detach()
    args = ((cond @ w_ih[:, :cond_w].T + gru.bias_ih_l0).detach().numpy().astype(np.float64),
            (emb.weight @ w_ih[:, cond_w:].T).detach().numpy().astype(np.float64),
            gru.weight_hh_l0.detach().numpy().astype(np.float64), gru.bias_hh_l0.detach().numpy().astype(np.float64),
            out.weight.detach().numpy().astype(np.float64),
            np.broadcast_to(out.bias.detach().numpy(), (batch, steps, bins)).astype(np.float64))
    for top_k in (32, 2):
        monkeypatch.setattr(f0_sampling, "TOP_K", top_k)
        drawn = sample_gru_categorical(*args, u, bins // 2, 0.8, 0.9)
        prev = torch.cat([torch.full((batch, 1), bins // 2), torch.from_numpy(drawn[:, :-1])], 1)
        with torch.no_grad():
            h, _ = gru(torch.cat([cond, emb(prev)], -1))
            logits = out(h).double().numpy()
        for t in range(steps):
            np.testing.assert_array_equal(drawn[:, t], reference_draw(logits[:, t], 1 / 0.8, 0.9, u[:, t]))
        # rows of unequal length: the same draws on each row's own steps, the padding repeats its last bin
        lengths = np.array([steps, 7, 19])
        short = sample_gru_categorical(*args, u, bins // 2, 0.8, 0.9, lengths=lengths)
        for row, n in enumerate(lengths):
            np.testing.assert_array_equal(short[row, :n], drawn[row, :n])
            assert (short[row, n:] == drawn[row, n - 1]).all()
