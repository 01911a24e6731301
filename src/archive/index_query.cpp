// Database::QueryIndex: the archive's index queried in DICOM terms (index_query.h), as one SQL
// statement per page whose matching, visibility and counts are all bound parameters.
#include "archive/index_query.h"

#include <algorithm>
#include <cctype>
#include <string_view>

#include <fmt/format.h>
#include <soci/soci.h>

#include "archive/database.h"
#include "archive/database_impl.h"

namespace pb {
namespace {

using db::DbError;
using db::Str;

enum class Kind {
  kText,      // exact or wildcard
  kName,      // PN: also by component group, optionally ignoring case
  kDate,      // DA: exact or range
  kTime,      // TM: exact or range
  kUid,       // UI: exact or list
  kCount,     // computed, not matched
  kChildren,  // computed list (ModalitiesInStudy, SOPClassesInStudy): matched as "has one"
};

struct Attribute {
  std::string_view keyword;
  IndexLevel level;
  std::string_view column;  // for kChildren: the column of the series or instance
  Kind kind;
};

// The index's attributes; the tables are aliased p (patients), s (studies), se (series) and
// i (instances).
constexpr Attribute kAttributes[] = {
    {"PatientName", IndexLevel::kPatient, "p.patient_name", Kind::kName},
    {"PatientID", IndexLevel::kPatient, "p.patient_id", Kind::kText},
    {"IssuerOfPatientID", IndexLevel::kPatient, "p.issuer", Kind::kText},
    {"PatientBirthDate", IndexLevel::kPatient, "p.birth_date", Kind::kDate},
    {"PatientSex", IndexLevel::kPatient, "p.sex", Kind::kText},
    {"NumberOfPatientRelatedStudies", IndexLevel::kPatient, "", Kind::kCount},
    {"NumberOfPatientRelatedSeries", IndexLevel::kPatient, "", Kind::kCount},
    {"NumberOfPatientRelatedInstances", IndexLevel::kPatient, "", Kind::kCount},
    {"StudyInstanceUID", IndexLevel::kStudy, "s.study_uid", Kind::kUid},
    {"StudyDate", IndexLevel::kStudy, "s.study_date", Kind::kDate},
    {"StudyTime", IndexLevel::kStudy, "s.study_time", Kind::kTime},
    {"AccessionNumber", IndexLevel::kStudy, "s.accession_number", Kind::kText},
    {"StudyID", IndexLevel::kStudy, "s.study_id", Kind::kText},
    {"StudyDescription", IndexLevel::kStudy, "s.description", Kind::kText},
    {"ReferringPhysicianName", IndexLevel::kStudy, "s.referring_physician", Kind::kName},
    {"ModalitiesInStudy", IndexLevel::kStudy, "modality", Kind::kChildren},
    {"SOPClassesInStudy", IndexLevel::kStudy, "sop_class_uid", Kind::kChildren},
    {"NumberOfStudyRelatedSeries", IndexLevel::kStudy, "", Kind::kCount},
    {"NumberOfStudyRelatedInstances", IndexLevel::kStudy, "", Kind::kCount},
    {"SeriesInstanceUID", IndexLevel::kSeries, "se.series_uid", Kind::kUid},
    {"Modality", IndexLevel::kSeries, "se.modality", Kind::kText},
    {"SeriesNumber", IndexLevel::kSeries, "se.series_number", Kind::kText},
    {"SeriesDescription", IndexLevel::kSeries, "se.description", Kind::kText},
    {"BodyPartExamined", IndexLevel::kSeries, "se.body_part", Kind::kText},
    {"NumberOfSeriesRelatedInstances", IndexLevel::kSeries, "", Kind::kCount},
    {"SOPInstanceUID", IndexLevel::kImage, "i.sop_uid", Kind::kUid},
    {"SOPClassUID", IndexLevel::kImage, "i.sop_class_uid", Kind::kUid},
    {"InstanceNumber", IndexLevel::kImage, "i.instance_number", Kind::kText},
    {"AvailableTransferSyntaxUID", IndexLevel::kImage, "i.transfer_syntax_uid", Kind::kUid},
};

const Attribute* Find(std::string_view keyword) {
  for (const auto& a : kAttributes) {
    if (a.keyword == keyword) return &a;
  }
  return nullptr;
}

// Counts and computed lists belong to their own level only (NumberOfStudyRelatedSeries is not
// an attribute of a series); stored attributes are known at their level and below.
bool KnownAt(const Attribute& a, IndexLevel level) {
  if (a.kind == Kind::kCount || a.kind == Kind::kChildren) return a.level == level;
  return a.level <= level;
}

// SQL text and its positional parameters, built together so they stay in order.
struct Sql {
  explicit Sql(Engine e) : engine(e) {}
  Engine engine;
  std::string text;
  std::vector<std::string> params;
  Sql& operator<<(std::string_view t) {
    text += t;
    return *this;
  }
  Sql& Param(std::string v) {
    text += '?';
    params.push_back(std::move(v));
    return *this;
  }
};

// " AND <alias>.project IN (?, ...)" when projects are limited.
void Visible(Sql& q, const IndexQuery& iq, std::string_view alias) {
  if (iq.projects.empty()) return;
  q << " AND " << alias << ".project IN (";
  for (size_t k = 0; k < iq.projects.size(); ++k) {
    if (k) q << ", ";
    q.Param(iq.projects[k]);
  }
  q << ")";
}

// The expression computing a count or list attribute for the current row.
void Computed(Sql& q, const IndexQuery& iq, std::string_view keyword) {
  if (keyword == "NumberOfPatientRelatedStudies") {
    if (iq.projects.empty()) {
      q << "(SELECT COUNT(*) FROM studies s2 WHERE s2.patient_pk = p.pk)";
    } else {
      q << "(SELECT COUNT(DISTINCT s2.pk) FROM studies s2 JOIN series se2 ON se2.study_pk = s2.pk "
           "WHERE s2.patient_pk = p.pk";
      Visible(q, iq, "se2");
      q << ")";
    }
  } else if (keyword == "NumberOfPatientRelatedSeries") {
    q << "(SELECT COUNT(*) FROM series se2 JOIN studies s2 ON se2.study_pk = s2.pk WHERE s2.patient_pk = p.pk";
    Visible(q, iq, "se2");
    q << ")";
  } else if (keyword == "NumberOfPatientRelatedInstances") {
    q << "(SELECT COUNT(*) FROM instances i2 JOIN series se2 ON i2.series_pk = se2.pk JOIN studies s2 ON "
         "se2.study_pk = s2.pk WHERE s2.patient_pk = p.pk";
    Visible(q, iq, "se2");
    q << ")";
  } else if (keyword == "NumberOfStudyRelatedSeries") {
    q << "(SELECT COUNT(*) FROM series se2 WHERE se2.study_pk = s.pk";
    Visible(q, iq, "se2");
    q << ")";
  } else if (keyword == "NumberOfStudyRelatedInstances") {
    q << "(SELECT COUNT(*) FROM instances i2 JOIN series se2 ON i2.series_pk = se2.pk WHERE se2.study_pk = s.pk";
    Visible(q, iq, "se2");
    q << ")";
  } else if (keyword == "ModalitiesInStudy") {
    q << "(SELECT " << db::GroupConcatDistinct(q.engine, "se2.modality")
      << " FROM series se2 WHERE se2.study_pk = s.pk AND se2.modality <> ''";
    Visible(q, iq, "se2");
    q << ")";
  } else if (keyword == "SOPClassesInStudy") {
    q << "(SELECT " << db::GroupConcatDistinct(q.engine, "i2.sop_class_uid")
      << " FROM instances i2 JOIN series se2 ON i2.series_pk = se2.pk WHERE se2.study_pk = s.pk AND "
         "i2.sop_class_uid <> ''";
    Visible(q, iq, "se2");
    q << ")";
  } else {  // NumberOfSeriesRelatedInstances
    q << "(SELECT COUNT(*) FROM instances i2 WHERE i2.series_pk = se.pk)";
  }
}

std::string Trim(std::string_view v) {
  size_t b = v.find_first_not_of(' ');
  if (b == std::string_view::npos) return {};
  size_t e = v.find_last_not_of(' ');
  return std::string(v.substr(b, e - b + 1));
}

std::vector<std::string> SplitValues(const std::string& value) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos <= value.size()) {
    size_t end = value.find('\\', pos);
    if (end == std::string::npos) end = value.size();
    out.push_back(Trim(std::string_view(value).substr(pos, end - pos)));
    pos = end + 1;
  }
  return out;
}

bool HasWildcard(const std::string& v) { return v.find_first_of("*?") != std::string::npos; }

bool Universal(const std::string& v) { return v.empty() || v.find_first_not_of('*') == std::string::npos; }

// A case-sensitive pattern in the engine's syntax, built from parts: SQLite's GLOB (* ? and
// [ ] classes) or PostgreSQL's LIKE with '\\' as its escape (% and _).
class Pattern {
 public:
  explicit Pattern(Engine e) : like_(e == Engine::kPostgres) {}
  // A DICOM value with its wildcards * and ? active, everything else literal.
  Pattern& Wild(std::string_view v) {
    for (char c : v) {
      if (c == '*' || c == '?') {
        out_ += like_ ? (c == '*' ? '%' : '_') : c;
      } else {
        Literal(c);
      }
    }
    return *this;
  }
  // A value taken literally, wildcards included.
  Pattern& Lit(std::string_view v) {
    for (char c : v) Literal(c);
    return *this;
  }
  // Any run of characters.
  Pattern& Any() {
    out_ += like_ ? '%' : '*';
    return *this;
  }
  // The operator that matches a column against the pattern, with its leading space.
  std::string_view Operator() const { return like_ ? " LIKE " : " GLOB "; }
  std::string_view Suffix() const { return like_ ? " ESCAPE '\\'" : ""; }
  const std::string& str() const { return out_; }

 private:
  void Literal(char c) {
    if (like_ && (c == '%' || c == '_' || c == '\\')) {
      out_ += '\\';
      out_ += c;
    } else if (!like_ && (c == '[' || c == '*' || c == '?')) {
      out_ += '[';
      out_ += c;
      out_ += ']';
    } else {
      out_ += c;
    }
  }
  bool like_;
  std::string out_;
};

std::string LowerAscii(std::string v) {
  for (char& c : v) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return v;
}

// One value's condition on `column` (a single value of a list: the caller ORs them).
void MatchOne(Sql& q, const Attribute& a, const std::string& column, const std::string& v, bool ignore_case) {
  switch (a.kind) {
    case Kind::kDate:
    case Kind::kTime: {
      auto dash = v.find('-');
      if (dash == std::string::npos) {
        q << column << " = ";
        q.Param(v);
        return;
      }
      std::string from = Trim(v.substr(0, dash)), to = Trim(v.substr(dash + 1));
      if (a.kind == Kind::kTime && !from.empty() && !to.empty() && from > to) {
        // A time range across midnight ("2300-0100"): from its start to the day's end, or
        // from the day's start to its end.
        q << "(" << column << " <> '' AND (" << column << " >= ";
        q.Param(from);
        q << fmt::format(" OR substr({}, 1, {}) <= ", column, to.size());
        q.Param(to);
        q << "))";
        return;
      }
      q << "(" << column << " <> ''";
      if (!from.empty()) {
        q << " AND " << column << " >= ";
        q.Param(from);
      }
      if (!to.empty()) {
        if (a.kind == Kind::kTime) {
          // "-1300" covers up to 13:00:59.999999: compare as many characters as the bound has.
          q << fmt::format(" AND substr({}, 1, {}) <= ", column, to.size());
        } else {
          q << " AND " << column << " <= ";
        }
        q.Param(to);
      }
      q << ")";
      return;
    }
    case Kind::kName: {
      std::string expr = ignore_case ? db::LowerAscii(q.engine, column) : column;
      std::string value = ignore_case ? LowerAscii(v) : v;
      const bool wild = HasWildcard(value);
      // `value` as a pattern, between the parts `before` and `after` add.
      auto match = [&](bool any_before, bool any_after) {
        Pattern p(q.engine);
        if (any_before) p.Any().Lit("=");
        if (wild)
          p.Wild(value);
        else
          p.Lit(value);
        if (any_after) p.Lit("=").Any();
        q << expr << p.Operator();
        q.Param(p.str());
        q << p.Suffix();
      };
      // The whole name, or one of its component groups (alphabetic=ideographic=phonetic).
      q << "(";
      if (wild) {
        match(false, false);
      } else {
        q << expr << " = ";
        q.Param(value);
      }
      q << " OR ";
      match(false, true);
      q << " OR ";
      match(true, false);
      q << " OR ";
      match(true, true);
      q << ")";
      return;
    }
    default:
      if (a.kind != Kind::kUid && HasWildcard(v)) {
        Pattern p(q.engine);
        p.Wild(v);
        q << column << p.Operator();
        q.Param(p.str());
        q << p.Suffix();
      } else {
        q << column << " = ";
        q.Param(v);
      }
  }
}

// The condition of one matching key ("" when it matches everything).
void Match(Sql& q, const IndexQuery& iq, const Attribute& a, const std::string& value) {
  std::vector<std::string> values = SplitValues(value);
  if (std::any_of(values.begin(), values.end(), Universal)) return;
  q << " AND (";
  for (size_t k = 0; k < values.size(); ++k) {
    if (k) q << " OR ";
    if (a.kind == Kind::kChildren) {
      if (a.column == "modality") {
        q << "EXISTS (SELECT 1 FROM series sm WHERE sm.study_pk = s.pk AND ";
        MatchOne(q, Attribute{a.keyword, a.level, "", Kind::kText}, "sm.modality", values[k], false);
        Visible(q, iq, "sm");
      } else {
        q << "EXISTS (SELECT 1 FROM instances im JOIN series sm ON im.series_pk = sm.pk WHERE sm.study_pk = s.pk AND ";
        MatchOne(q, Attribute{a.keyword, a.level, "", Kind::kUid}, "im.sop_class_uid", values[k], false);
        Visible(q, iq, "sm");
      }
      q << ")";
    } else {
      MatchOne(q, a, std::string(a.column), values[k], iq.names_ignore_case);
    }
  }
  q << ")";
}

// Runs the statement, calling `on_row` for each row.
template <typename F>
void Run(soci::session& session, Sql& q, F&& on_row) {
  soci::row row;
  soci::statement st(session);
  for (auto& p : q.params) st.exchange(soci::use(p));
  st.exchange(soci::into(row));
  st.alloc();
  st.prepare(db::NumberPlaceholders(q.text));
  st.define_and_bind();
  st.execute(false);
  while (st.fetch()) on_row(row);
}

// " FROM ... WHERE ... ORDER BY ..." of a query at its level: the matching keys, the visible
// projects, and the index's own order.
void FromWhereOrder(Sql& q, const IndexQuery& iq) {
  switch (iq.level) {
    case IndexLevel::kPatient:
      q << " FROM patients p WHERE 1 = 1";
      break;
    case IndexLevel::kStudy:
      q << " FROM studies s JOIN patients p ON s.patient_pk = p.pk WHERE 1 = 1";
      break;
    case IndexLevel::kSeries:
      q << " FROM series se JOIN studies s ON se.study_pk = s.pk JOIN patients p ON s.patient_pk = p.pk WHERE 1 = 1";
      break;
    case IndexLevel::kImage:
      q << " FROM instances i JOIN series se ON i.series_pk = se.pk JOIN studies s ON se.study_pk = s.pk "
           "JOIN patients p ON s.patient_pk = p.pk WHERE 1 = 1";
      break;
  }
  for (const auto& [keyword, value] : iq.keys) {
    const Attribute* a = Find(keyword);
    if (!a || !KnownAt(*a, iq.level) || a->kind == Kind::kCount) continue;
    Match(q, iq, *a, value);
  }
  if (!iq.projects.empty()) {
    switch (iq.level) {
      case IndexLevel::kPatient:
        q << " AND EXISTS (SELECT 1 FROM studies sv2 JOIN series sv ON sv.study_pk = sv2.pk WHERE sv2.patient_pk = "
             "p.pk";
        Visible(q, iq, "sv");
        q << ")";
        break;
      case IndexLevel::kStudy:
        q << " AND EXISTS (SELECT 1 FROM series sv WHERE sv.study_pk = s.pk";
        Visible(q, iq, "sv");
        q << ")";
        break;
      default:
        Visible(q, iq, "se");
    }
  }
  switch (iq.level) {
    case IndexLevel::kPatient:
      q << " ORDER BY p.pk";
      break;
    case IndexLevel::kStudy:
      q << " ORDER BY s.pk";
      break;
    case IndexLevel::kSeries:
      q << " ORDER BY s.pk, " << db::AsInteger(q.engine, "se.series_number") << ", se.pk";
      break;
    case IndexLevel::kImage:
      q << " ORDER BY se.pk, " << db::AsInteger(q.engine, "i.instance_number") << ", i.pk";
      break;
  }
}

}  // namespace

bool IndexKnows(IndexLevel level, const std::string& keyword) {
  const Attribute* a = Find(keyword);
  return a && KnownAt(*a, level);
}

bool IndexLevelFromName(const std::string& name, IndexLevel& level) {
  if (name == "PATIENT")
    level = IndexLevel::kPatient;
  else if (name == "STUDY")
    level = IndexLevel::kStudy;
  else if (name == "SERIES")
    level = IndexLevel::kSeries;
  else if (name == "IMAGE")
    level = IndexLevel::kImage;
  else
    return false;
  return true;
}

Result<std::vector<IndexAnswer>> Database::QueryIndex(const IndexQuery& iq) {
  std::vector<const Attribute*> columns;
  for (const auto& k : iq.returns) {
    const Attribute* a = Find(k);
    if (a && KnownAt(*a, iq.level) && std::find(columns.begin(), columns.end(), a) == columns.end()) {
      columns.push_back(a);
    }
  }
  Sql q(impl_->engine);
  q << "SELECT 0";
  for (const Attribute* a : columns) {
    q << ", ";
    if (a->kind == Kind::kCount || a->kind == Kind::kChildren)
      Computed(q, iq, a->keyword);
    else
      q << a->column;
  }
  FromWhereOrder(q, iq);
  q << fmt::format(" LIMIT {} OFFSET {}", iq.limit, iq.offset);
  try {
    db::ReadSession s(impl_->pool, impl_->read_use);
    std::vector<IndexAnswer> out;
    Run(s, q, [&](const soci::row& row) {
      IndexAnswer answer;
      for (size_t k = 0; k < columns.size(); ++k) {
        std::string v;
        if (columns[k]->kind == Kind::kCount) {
          v = std::to_string(db::Int(row, k + 1));
        } else {
          v = Str(row, k + 1);
          if (columns[k]->kind == Kind::kChildren) std::replace(v.begin(), v.end(), ',', '\\');
        }
        answer.emplace(columns[k]->keyword, std::move(v));
      }
      out.push_back(std::move(answer));
    });
    return out;
  } catch (const std::exception& e) {
    return tl::unexpected(DbError(e, "querying the index"));
  }
}

Result<std::vector<InstanceRow>> Database::QueryInstances(const IndexQuery& query) {
  IndexQuery iq = query;
  iq.level = IndexLevel::kImage;
  Sql q(impl_->engine);
  q << "SELECT i.sop_uid, se.series_uid, s.study_uid, i.sop_class_uid, i.instance_number, i.transfer_syntax_uid, "
       "i.file_path, i.file_size";
  FromWhereOrder(q, iq);
  q << fmt::format(" LIMIT {} OFFSET {}", iq.limit, iq.offset);
  try {
    db::ReadSession s(impl_->pool, impl_->read_use);
    std::vector<InstanceRow> out;
    Run(s, q, [&](const soci::row& row) {
      InstanceRow r;
      r.sop_uid = Str(row, 0);
      r.series_uid = Str(row, 1);
      r.study_uid = Str(row, 2);
      r.sop_class_uid = Str(row, 3);
      r.instance_number = Str(row, 4);
      r.transfer_syntax_uid = Str(row, 5);
      r.file_path = Str(row, 6);
      r.file_size = db::Int(row, 7);
      out.push_back(std::move(r));
    });
    return out;
  } catch (const std::exception& e) {
    return tl::unexpected(DbError(e, "listing the instances to retrieve"));
  }
}

Result<std::vector<MetadataRow>> Database::QueryMetadata(const IndexQuery& query) {
  IndexQuery iq = query;
  iq.level = IndexLevel::kImage;
  Sql q(impl_->engine);
  // The JSON is read afterwards, by key: selected here it would go through the sort (and,
  // megabytes of it, through SQLite's temp files).
  q << "SELECT i.pk, i.sop_uid, se.series_uid, s.study_uid, i.file_path, i.received_at, i.version";
  FromWhereOrder(q, iq);
  q << fmt::format(" LIMIT {} OFFSET {}", iq.limit, iq.offset);
  try {
    db::ReadSession s(impl_->pool, impl_->read_use);
    // One read transaction: one snapshot, and SQLite's file lock taken once, not per row.
    soci::transaction tx(s);
    std::vector<MetadataRow> out;
    Run(s, q, [&](const soci::row& row) {
      MetadataRow r;
      r.pk = db::Int(row, 0);
      r.sop_uid = Str(row, 1);
      r.series_uid = Str(row, 2);
      r.study_uid = Str(row, 3);
      r.file_path = Str(row, 4);
      r.received_at = Str(row, 5);
      r.version = db::Int(row, 6);
      out.push_back(std::move(r));
    });
    long long pk = 0;
    std::string json;
    soci::indicator ind = soci::i_ok;
    soci::statement st = (s.prepare << "SELECT json FROM instance_metadata WHERE instance_pk = :p", soci::use(pk),
                          soci::into(json, ind));
    for (MetadataRow& r : out) {
      pk = r.pk;
      json.clear();
      if (st.execute(true) && ind == soci::i_ok) r.json = std::move(json);
    }
    tx.commit();
    return out;
  } catch (const std::exception& e) {
    return tl::unexpected(DbError(e, "reading the instances' metadata"));
  }
}

}  // namespace pb
