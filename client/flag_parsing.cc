#include "client/flag_parsing.h"

#include <algorithm>
#include <optional>

#include "absl/container/flat_hash_set.h"
#include "absl/flags/commandlineflag.h"
#include "absl/flags/reflection.h"
#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace attnserve::client {
namespace {

// Bools and optional bools (unset, true, false) take the switch forms --name
// and --noname.
bool IsSwitch(const absl::CommandLineFlag& flag) {
  return flag.IsOfType<bool>() || flag.IsOfType<std::optional<bool>>();
}

// Only the tool's own flags: Abseil's built-ins (--flagfile, --helpfull, ...)
// are not handled by this parser, so accepting them would silently do nothing.
bool IsOwn(const absl::CommandLineFlag& flag,
           absl::Span<const absl::string_view> own_files) {
  return std::any_of(own_files.begin(), own_files.end(),
                     [&flag](absl::string_view file) {
                       return absl::EndsWith(flag.Filename(), file);
                     });
}

absl::CommandLineFlag* FindOwnFlag(
    absl::string_view name, absl::Span<const absl::string_view> own_files) {
  absl::CommandLineFlag* flag = absl::FindCommandLineFlag(name);
  if (flag == nullptr || !IsOwn(*flag, own_files)) return nullptr;
  return flag;
}

// `text` wrapped at 80 columns, each line indented by `indent` spaces.
std::string Wrap(absl::string_view text, int indent) {
  std::string out(indent, ' ');
  size_t column = indent;
  for (absl::string_view word : absl::StrSplit(text, ' ', absl::SkipEmpty())) {
    if (column > static_cast<size_t>(indent) && column + 1 + word.size() > 80) {
      absl::StrAppend(&out, "\n", std::string(indent, ' '));
      column = indent;
    } else if (column > static_cast<size_t>(indent)) {
      out += ' ';
      ++column;
    }
    absl::StrAppend(&out, word);
    column += word.size();
  }
  return out;
}

void AppendFlagHelp(const absl::CommandLineFlag& flag, std::string* text) {
  absl::StrAppend(text, "  --", flag.Name(), " (default: \"",
                  flag.DefaultValue(), "\")\n", Wrap(flag.Help(), 6), "\n");
}

}  // namespace

absl::StatusOr<CommandLine> ParseCommandLineStrict(
    int argc, char** argv, absl::Span<const absl::string_view> own_files) {
  CommandLine result;
  for (int i = 1; i < argc; ++i) {
    absl::string_view arg = argv[i];
    if (arg == "--") {
      result.positional.insert(result.positional.end(), argv + i + 1,
                               argv + argc);
      break;
    }
    if (arg.size() < 2 || arg[0] != '-') {
      result.positional.emplace_back(arg);
      continue;
    }
    arg.remove_prefix(arg[1] == '-' ? 2 : 1);
    const size_t equals = arg.find('=');
    const absl::string_view name = arg.substr(0, equals);
    std::optional<std::string> value;
    if (equals != absl::string_view::npos) {
      value = std::string(arg.substr(equals + 1));
    }
    if (name == "help" || name == "h") {
      result.help = true;
      continue;
    }
    absl::CommandLineFlag* flag = FindOwnFlag(name, own_files);
    if (flag == nullptr && !value.has_value() && absl::StartsWith(name, "no")) {
      absl::CommandLineFlag* negated = FindOwnFlag(name.substr(2), own_files);
      if (negated != nullptr && IsSwitch(*negated)) {
        flag = negated;
        value = "false";
      }
    }
    if (flag == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("unknown flag --", name));
    }
    if (!value.has_value()) {
      if (IsSwitch(*flag)) {
        value = "true";
      } else if (i + 1 < argc) {
        value = argv[++i];
      } else {
        return absl::InvalidArgumentError(
            absl::StrCat("--", name, " needs a value"));
      }
    }
    std::string error;
    if (!flag->ParseFrom(*value, &error)) {
      return absl::InvalidArgumentError(
          absl::StrCat("--", name, "=", *value, ": ", error));
    }
    result.given.emplace_back(flag->Name());
  }
  return result;
}

bool CommandLine::Given(absl::string_view name) const {
  return std::find(given.begin(), given.end(), name) != given.end();
}

std::string FlagsHelp(absl::string_view usage,
                      absl::Span<const absl::string_view> own_files,
                      const std::vector<FlagGroup>& groups) {
  std::string text = absl::StrCat(usage, "\n");
  absl::flat_hash_set<std::string> listed;
  for (const FlagGroup& group : groups) {
    absl::StrAppend(&text, group.heading, ":\n");
    for (const std::string& name : group.flags) {
      const absl::CommandLineFlag* flag = FindOwnFlag(name, own_files);
      if (flag == nullptr || !listed.insert(name).second) continue;
      AppendFlagHelp(*flag, &text);
    }
    text += "\n";
  }
  std::vector<absl::CommandLineFlag*> others;
  for (const auto& [name, flag] : absl::GetAllFlags()) {
    if (IsOwn(*flag, own_files) && !listed.contains(flag->Name())) {
      others.push_back(flag);
    }
  }
  std::sort(others.begin(), others.end(),
            [](const absl::CommandLineFlag* a, const absl::CommandLineFlag* b) {
              return a->Name() < b->Name();
            });
  if (!others.empty()) {
    absl::StrAppend(&text, groups.empty() ? "Flags" : "Other flags", ":\n");
    for (const absl::CommandLineFlag* flag : others) {
      AppendFlagHelp(*flag, &text);
    }
  }
  return text;
}

}  // namespace attnserve::client
