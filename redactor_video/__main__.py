"""`python -m redactor_video` is the `redactor` command."""

from redactor_video.cli import main

main()
