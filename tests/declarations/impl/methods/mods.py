"""Factories for the implementation corpus: each YAML beside names one, rightly or wrongly."""


class Good:
    def __init__(self, *, lr: float) -> None:
        self.lr = lr


class NeedsMomentum:
    def __init__(self, *, lr: float, momentum: float) -> None:
        self.lr = lr


NOT_CALLABLE = 3
