"""Neural architecture search under memory constraints (chapter 8), in small pieces.

* `space`: the DS-CNN family as genes (`Arch`) and design spaces (`DesignSpace`);
* `costs`: analytic MACs, SRAM and flash of an `Arch`, and the `Constraints` a model must meet;
* `supernet`: one weight-sharing network that contains every model of a design space;
* `estimate`: training the supernet once and estimating any sub-network's accuracy from it;
* `search`: random and evolutionary search under constraints, mutation, crossover, Pareto fronts,
  and TinyNAS's choice of design space;
* `ranking`: rank correlation of estimated and true accuracies;
* `retrain`: an architecture trained from scratch (cached), the ground truth for the estimates;
* `problem`: the course's limits and design spaces, and the one supernet chapter and lab share.
"""
