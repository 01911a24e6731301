#pragma once
// What the DICOMweb server's routes share (internal to src/http): UIDs of paths, the root that
// answers' URLs start with, and DICOM JSON answers (gzip-compressed for clients that accept it).
#include <string>
#include <vector>

#include <httplib.h>

#include "http/api.h"

namespace pb::http {

bool IsUid(const std::string& v);

// A value as one path segment of a URL: a UID as it is; anything else (the index keeps what
// senders sent) percent-encoded, so it can neither leave its segment nor break the JSON it is
// written into.
std::string UrlSegment(const std::string& v);

// "[dicomweb] public_root" when set (behind a reverse proxy), else scheme://Host/dicom-web of
// the request.
std::string DicomwebRoot(const Services& s, const httplib::Request& req);

// The projects the calling account may see (empty: all), for every index query of the server.
std::vector<std::string> VisibleProjects();

// A DICOM JSON body as application/dicom+json, gzip-compressed when the client accepts gzip.
void SendDicomJson(const httplib::Request& req, httplib::Response& res, int status, std::string body);

}  // namespace pb::http
