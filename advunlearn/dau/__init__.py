"""Discriminative Adversarial Unlearning, the paper's method: read in this order.

1. :mod:`~advunlearn.dau.attacker`: the SAMIA-style transformer membership-inference attacker, its
   tokens (the defender's softmax, the label, the sensitivity) and its pretraining on θ0;
2. :mod:`~advunlearn.dau.losses`: the attacker's loss L_A, the cross-correlation matrix and the
   Barlow-Twins term V_ss;
3. :mod:`~advunlearn.dau.unlearn`: Algorithm 1, the min-max loop, as a steppable
   :class:`~advunlearn.dau.unlearn.AdversarialUnlearner` with callbacks;
4. :mod:`~advunlearn.dau.history`: what the loop records for the live plots.

It stands on :mod:`advunlearn.core` only; :mod:`advunlearn.methods.ours` runs it as a registered method.
"""
