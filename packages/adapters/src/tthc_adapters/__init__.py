"""What the pure core (`tthc_core`) leaves out, shared by the `tthc` command and the services:

    calendar_file   load_calendar(path): the deployment's calendar file, read and parsed strictly
    replay          the files of `tthc replay`: the event log in, dossiers/apologies/indices and letters out
    pdf             the PDF preview of a letter through LibreOffice, when it is installed
    cli             the `tthc` command
"""
