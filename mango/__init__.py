"""The MANGO OFFICE VPBX protocol: signing, the form body, the event model, commands.

Imports nothing else of the project: the service, the sync, the emulators and
the benchmark all speak the PBX through it.
"""
