"""Problem classes for the implementation corpus."""


class Small:
    def __init__(self, *, backend, n: int = 3) -> None:
        self.n = n


class NoBackend:
    def __init__(self, *, n: int = 3) -> None:
        self.n = n
