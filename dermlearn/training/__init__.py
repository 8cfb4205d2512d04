"""Training: the :class:`~dermlearn.training.learner.Learner` (the loop, callbacks, optimizer,
freezing) and what runs in its loop: schedules (:mod:`.schedule`), layer groups and
optimizers (:mod:`.optim`), the LR range test (:mod:`.lr_finder`), the recorder, trackers,
progress bars and time budget, checkpoints, guards and mixed precision; the study's recipe
(:mod:`.recipe`) and :func:`~dermlearn.training.load_learner.load_learner`. The public names
are in ``dermlearn``'s namespace."""
