"""dermlearn's data, pipeline steps and interpretation inside other libraries' training
loops: fastai (:mod:`.fastai`, extra ``dermlearn[fastai]``)."""
