from datetime import date
def evaluate(*a, **k): raise NotImplementedError
