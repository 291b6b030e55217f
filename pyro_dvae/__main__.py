"""``python -m pyro_dvae``: the command line, as the ``pyro-dvae`` script runs it (what torchrun launches:
``torchrun --nproc_per_node N -m pyro_dvae train ...``)."""

from .cli import main

if __name__ == "__main__":
    main(prog_name="pyro-dvae")
