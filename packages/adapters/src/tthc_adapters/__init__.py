"""What the pure core (`tthc_core`) leaves out, shared by the `tthc` command and the services:

    calendar_file   load_calendar(path): the deployment's calendar file, read and parsed strictly
    catalogue_file  load_catalogue(path): the DVCQG procedure catalogue (MaTTHC -> duration), read strictly
    replay          the files of `tthc replay`: the event log in, dossiers/apologies/indices and letters out
    pdf             the PDF preview of a letter through LibreOffice, when it is installed
    dvcqg           `tthc dvcqg`: national-portal request bodies translated offline into v1 events
    cli             the `tthc` command
"""
