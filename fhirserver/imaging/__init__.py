"""Imaging: DICOM in (pydicom), ImagingStudy out, original objects served losslessly over DICOMweb."""
