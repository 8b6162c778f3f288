"""Exact circuit matrices (``fmpq_mat``, nothing rounded) from the certificate's float32 weights
(docs/format.md), each formed only when a rule asks for it: the sub-cubic rule never forms EQKE.

    EQKE = (E_q Q + b_Q)(E K + b_K)^T      [v, v]   (no 1/sqrt(d_head): applied at the softmax)
    EQKP = (E_q Q + b_Q)(P K)^T            [v, k]
    EVOU = ((E V + b_V) O + b_O) U + b_U   [v, v]
    PVOU = P V O U                         [k, v]
    EU   = E_q U                           [v, v]
with E_q = W_E + W_pos[k-1] (the query is always at the last position).
"""

from __future__ import annotations

import functools

import flint

from checker.arith import exact_matrix
from checker.cost import Work
from checker.format import Certificate


class Weights:
    """The certificate's weights as exact matrices, with FLOP-counted products; each circuit is
    a property computed once, so rules sharing circuits pay for them once."""

    def __init__(self, cert: Certificate, work: Work):
        w = cert.weights
        self.work = work
        self.E, self.P = exact_matrix(w["embed.W_E"]), exact_matrix(w["pos_embed.W_pos"])
        self.Q, self.K, self.V = (exact_matrix(w[f"blocks.0.attn.W_{n}"][0]) for n in "QKV")
        self.O = exact_matrix(w["blocks.0.attn.W_O"][0])
        self.bQ, self.bK, self.bV = (exact_matrix(w[f"blocks.0.attn.b_{n}"][0]) for n in "QKV")
        self.bO = exact_matrix(w["blocks.0.attn.b_O"])
        self.U, self.bU = exact_matrix(w["unembed.W_U"]), exact_matrix(w["unembed.b_U"])
        last = exact_matrix(w["pos_embed.W_pos"][-1])  # the query position's row of P
        self.Eq = self.add_row(self.E, last)

    def mul(self, a: flint.fmpq_mat, b: flint.fmpq_mat) -> flint.fmpq_mat:
        self.work.matmul(a.nrows(), a.ncols(), b.ncols())
        return a * b

    def add_row(self, a: flint.fmpq_mat, row: flint.fmpq_mat) -> flint.fmpq_mat:
        self.work.add(a.nrows() * a.ncols())
        return a + broadcast_row(row, a.nrows())

    @functools.cached_property
    def query(self) -> flint.fmpq_mat:
        """E_q Q + b_Q  [v, d_head]."""
        return self.add_row(self.mul(self.Eq, self.Q), self.bQ)

    @functools.cached_property
    def eqke(self) -> flint.fmpq_mat:
        key = self.add_row(self.mul(self.E, self.K), self.bK)
        return self.mul(self.query, key.transpose())

    @functools.cached_property
    def eqkp(self) -> flint.fmpq_mat:
        return self.mul(self.query, self.mul(self.P, self.K).transpose())

    @functools.cached_property
    def evou(self) -> flint.fmpq_mat:
        ev = self.add_row(self.mul(self.E, self.V), self.bV)
        evo = self.add_row(self.mul(ev, self.O), self.bO)
        return self.add_row(self.mul(evo, self.U), self.bU)

    @functools.cached_property
    def pvou(self) -> flint.fmpq_mat:
        return self.mul(self.mul(self.mul(self.P, self.V), self.O), self.U)

    @functools.cached_property
    def eu(self) -> flint.fmpq_mat:
        return self.mul(self.Eq, self.U)


def broadcast_row(row: flint.fmpq_mat, n: int) -> flint.fmpq_mat:
    """An n-row matrix whose every row is ``row`` (a 1×c matrix)."""
    return flint.fmpq_mat(n, row.ncols(), list(row.entries()) * n)
