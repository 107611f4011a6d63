"""Dialog request ids travel on the dialog's command line: each must parse back as itself."""

from __future__ import annotations

from trayagent.agent.agent import new_request_id
from trayagent.cli.main import build_parser


def test_request_ids_survive_the_dialog_command_line() -> None:
    parser = build_parser()
    for _ in range(500):  # a urlsafe token started with '-' about once in 64 draws
        request = new_request_id()
        args = parser.parse_args(["dialog", "dataset", "--request", request])
        assert args.request == request
