package sdl_test

import (
	"strings"
	"testing"

	"github.com/vektah/gqlparser/v2/ast"

	"github.com/threadline/threadline/ops/schema/sdl"
)

func load(t *testing.T, src string) *ast.Schema {
	t.Helper()
	s, err := sdl.Load(&ast.Source{Name: "test.graphql", Input: src})
	if err != nil {
		t.Fatalf("load: %v\n%s", err, src)
	}
	return s
}

const base = `
"A point in time."
scalar Time
directive @auth(role: String) on FIELD_DEFINITION | OBJECT
interface Node { id: ID! }
type Query {
  me: User!
  user(id: ID!, withDeleted: Boolean = false): User
  users(first: Int = 20, filter: UserFilter): [User!]!
  search(text: String!): [Result!]!
}
type Mutation { rename(input: RenameInput!): User! }
type User implements Node @auth {
  id: ID!
  name: String!
  nickname: String
  tags: [String!]!
  friends: [User]
  role: Role!
  createdAt: Time!
}
type Group implements Node { id: ID!  title: String! }
union Result = User | Group
enum Role { ADMIN MEMBER }
input UserFilter { role: Role  name: String }
input RenameInput { id: ID!  name: String!  reason: String = "none" }
`

// edit applies string replacements to base.
func edit(pairs ...string) string {
	return strings.NewReplacer(pairs...).Replace(base)
}

func TestCompare(t *testing.T) {
	type change struct {
		level sdl.Level
		path  string
	}
	for _, tc := range []struct {
		name string
		new  string
		want []change
	}{
		{"no change", base, nil},
		{"reordered", edit("  id: ID!\n  name: String!\n", "  name: String!\n  id: ID!\n"), nil},
		{"field removed", edit("  nickname: String\n", ""), []change{{sdl.Breaking, "User.nickname"}}},
		{"field added", edit("  nickname: String\n", "  nickname: String\n  bio: String\n"), []change{{sdl.Safe, "User.bio"}}},
		{"field deprecated", edit("  nickname: String\n", "  nickname: String @deprecated(reason: \"use name\")\n"), []change{{sdl.Safe, "User.nickname"}}},
		{"output made non-null", edit("nickname: String\n", "nickname: String!\n"), []change{{sdl.Safe, "User.nickname"}}},
		{"output made nullable", edit("name: String!\n  nickname", "name: String\n  nickname"), []change{{sdl.Breaking, "User.name"}}},
		{"list element made nullable", edit("tags: [String!]!", "tags: [String]!"), []change{{sdl.Breaking, "User.tags"}}},
		{"list and elements made non-null", edit("friends: [User]", "friends: [User!]!"), []change{{sdl.Safe, "User.friends"}}},
		{"output type changed", edit("createdAt: Time!", "createdAt: String!"), []change{{sdl.Breaking, "User.createdAt"}}},
		{"output wrapped in a list", edit("role: Role!", "role: [Role!]!"), []change{{sdl.Breaking, "User.role"}}},
		{"argument removed", edit("user(id: ID!, withDeleted: Boolean = false)", "user(id: ID!)"), []change{{sdl.Breaking, "Query.user(withDeleted:)"}}},
		{"required argument added", edit("me: User!", "me(as: ID!): User!"), []change{{sdl.Breaking, "Query.me(as:)"}}},
		{"optional argument added", edit("me: User!", "me(as: ID): User!"), []change{{sdl.Safe, "Query.me(as:)"}}},
		{"non-null argument with a default added", edit("me: User!", "me(fresh: Boolean! = false): User!"), []change{{sdl.Safe, "Query.me(fresh:)"}}},
		{"argument made non-null", edit("users(first: Int = 20", "users(first: Int! = 20"), []change{{sdl.Breaking, "Query.users(first:)"}}},
		{"argument made nullable", edit("user(id: ID!", "user(id: ID"), []change{{sdl.Safe, "Query.user(id:)"}}},
		{"argument type changed", edit("search(text: String!)", "search(text: ID!)"), []change{{sdl.Breaking, "Query.search(text:)"}}},
		{"argument default changed", edit("first: Int = 20", "first: Int = 50"), []change{{sdl.Dangerous, "Query.users(first:)"}}},
		{"type removed", edit("type Group implements Node { id: ID!  title: String! }", "", "union Result = User | Group", "union Result = User"),
			[]change{{sdl.Breaking, "Group"}, {sdl.Breaking, "Result"}}},
		{"type added", base + "type Team { id: ID! }", []change{{sdl.Safe, "Team"}}},
		{"kind changed", edit("input UserFilter {", "type UserFilter {", "users(first: Int = 20, filter: UserFilter)", "users(first: Int = 20)"),
			[]change{{sdl.Breaking, "Query.users(filter:)"}, {sdl.Breaking, "UserFilter"}}},
		{"interface dropped", edit("type Group implements Node {", "type Group {"), []change{{sdl.Breaking, "Group"}}},
		{"interface added", edit("type Group implements Node {", "type Group implements Node & Named {", "interface Node { id: ID! }", "interface Node { id: ID! }\ninterface Named { title: String! }"),
			[]change{{sdl.Dangerous, "Group"}, {sdl.Safe, "Named"}}},
		{"union member added", edit("union Result = User | Group", "union Result = User | Group | Team") + "type Team { id: ID! }",
			[]change{{sdl.Dangerous, "Result"}, {sdl.Safe, "Team"}}},
		{"enum value removed", edit("enum Role { ADMIN MEMBER }", "enum Role { ADMIN }"), []change{{sdl.Breaking, "Role.MEMBER"}}},
		{"enum value added", edit("enum Role { ADMIN MEMBER }", "enum Role { ADMIN MEMBER GUEST }"), []change{{sdl.Dangerous, "Role.GUEST"}}},
		{"input field removed", edit("input UserFilter { role: Role  name: String }", "input UserFilter { role: Role }"), []change{{sdl.Breaking, "UserFilter.name"}}},
		{"required input field added", edit("reason: String = \"none\" }", "reason: String = \"none\"  force: Boolean! }"), []change{{sdl.Breaking, "RenameInput.force"}}},
		{"optional input field added", edit("reason: String = \"none\" }", "reason: String = \"none\"  force: Boolean }"), []change{{sdl.Safe, "RenameInput.force"}}},
		{"input field made non-null", edit("input UserFilter { role: Role ", "input UserFilter { role: Role! "), []change{{sdl.Breaking, "UserFilter.role"}}},
		{"input field default changed", edit(`reason: String = "none"`, `reason: String = "unknown"`), []change{{sdl.Dangerous, "RenameInput.reason"}}},
		{"root type removed", edit("type Mutation { rename(input: RenameInput!): User! }", "", "input RenameInput { id: ID!  name: String!  reason: String = \"none\" }", ""),
			[]change{{sdl.Breaking, "Mutation"}, {sdl.Breaking, "RenameInput"}, {sdl.Breaking, "schema.mutation"}}},
		{"directive removed", edit("directive @auth(role: String) on FIELD_DEFINITION | OBJECT", "", "type User implements Node @auth {", "type User implements Node {"),
			[]change{{sdl.Breaking, "@auth"}}},
		{"directive location removed", edit("on FIELD_DEFINITION | OBJECT", "on OBJECT"), []change{{sdl.Breaking, "@auth"}}},
		{"scalar removed", edit(`"A point in time."`+"\nscalar Time", "", "createdAt: Time!", "createdAt: String!"),
			[]change{{sdl.Breaking, "Time"}, {sdl.Breaking, "User.createdAt"}}},
		{"description changed", edit(`"A point in time."`, `"An instant."`), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			changes := sdl.Compare(load(t, base), load(t, tc.new))
			var got []change
			for _, c := range changes {
				got = append(got, change{c.Level, c.Path})
			}
			if len(got) != len(tc.want) {
				t.Fatalf("changes:\n%s\nwant %v", sdl.Report(changes), tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Fatalf("changes:\n%s\nwant %v", sdl.Report(changes), tc.want)
				}
			}
		})
	}
}

func TestBreakingChanges(t *testing.T) {
	changes := sdl.Compare(load(t, base), load(t, edit("  nickname: String\n", "", "enum Role { ADMIN MEMBER }", "enum Role { ADMIN MEMBER GUEST }")))
	br := sdl.BreakingChanges(changes)
	if len(changes) != 2 || len(br) != 1 || br[0].Path != "User.nickname" || br[0].Message != "field removed" {
		t.Fatalf("changes:\n%s\nbreaking:\n%s", sdl.Report(changes), sdl.Report(br))
	}
	if got := br[0].String(); got != "BREAKING User.nickname: field removed" {
		t.Errorf("String() = %q", got)
	}
}

func TestCanonicalIgnoresOrder(t *testing.T) {
	a := load(t, base)
	b := load(t, `
input RenameInput { reason: String = "none"  name: String!  id: ID! }
enum Role { MEMBER ADMIN }
input UserFilter { name: String  role: Role }
union Result = Group | User
type Group implements Node { title: String!  id: ID! }
type User implements Node @auth { friends: [User]  tags: [String!]!  role: Role!  nickname: String  name: String!  id: ID!  createdAt: Time! }
type Mutation { rename(input: RenameInput!): User! }
type Query {
  search(text: String!): [Result!]!
  users(filter: UserFilter, first: Int = 20): [User!]!
  user(withDeleted: Boolean = false, id: ID!): User
  me: User!
}
interface Node { id: ID! }
directive @auth(role: String) on OBJECT | FIELD_DEFINITION
"A point in time."
scalar Time
`)
	if sdl.Canonical(a) != sdl.Canonical(b) {
		t.Errorf("canonical forms differ:\n%s\n---\n%s", sdl.Canonical(a), sdl.Canonical(b))
	}
	if sdl.Print(a) == sdl.Print(b) {
		t.Error("Print sorted the fields: it should keep declaration order")
	}
	// Canonical leaves its argument alone.
	if got := a.Types["User"].Fields[0].Name; got != "id" {
		t.Errorf("Canonical reordered the schema's fields: first is %s", got)
	}
	// And it tells different schemas apart.
	if sdl.Canonical(a) == sdl.Canonical(load(t, edit("nickname: String", "nickname: String!"))) {
		t.Error("canonical forms of different schemas are equal")
	}
}

func TestPrintRoundTrip(t *testing.T) {
	a := load(t, base)
	printed := sdl.Print(a)
	for _, builtin := range []string{"scalar String", "directive @skip", "__Schema", "__schema"} {
		if strings.Contains(printed, builtin) {
			t.Errorf("printed schema has %q:\n%s", builtin, printed)
		}
	}
	b := load(t, printed)
	if sdl.Canonical(a) != sdl.Canonical(b) || len(sdl.Compare(a, b)) != 0 {
		t.Errorf("printing changed the schema:\n%s", printed)
	}
}

func TestLoadFiles(t *testing.T) {
	if _, err := sdl.LoadFiles("testdata/none-*.graphqls"); err == nil {
		t.Error("no error for a pattern that matches nothing")
	}
	s, err := sdl.LoadFiles("../../../graph/*.graphqls")
	if err != nil {
		t.Fatal(err)
	}
	if s.Query == nil || s.Types["Message"] == nil {
		t.Error("graph/*.graphqls loaded without Query or Message")
	}
}
