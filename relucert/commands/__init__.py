"""CLI sub-commands, one module each."""


def refuse_output_bias(point, command: str, path: str) -> None:
    """Commands that do not carry an output bias c yet refuse a point with one: analysing the network
    without c would be analysing another network (never drop a parameter silently)."""
    if getattr(point, "c", None) is not None:
        from relucert.errors import InputError
        raise InputError(f"{path}: field 'c': '{command}' does not handle an output bias yet (it would analyse "
                         "the network without it); 'relucert certify --exact-only' does")
