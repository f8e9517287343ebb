package setup

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Action is what autosetup will do about one item.
type Action string

// Actions of a proposal.
const (
	// ActionReuse: an existing amoCRM item is used as it is.
	ActionReuse Action = "reuse"
	// ActionCreate: the item is created under Decision.Name.
	ActionCreate Action = "create"
	// ActionSkip: nothing is done and the datum is not sent (a predefined
	// field the account does not have).
	ActionSkip Action = "skip"
)

// Decision is what autosetup will do about one item. Name is the existing
// item's name (reuse) or the name it will be created under (create); Note, in
// Russian, explains a decision the user might not expect.
type Decision struct {
	Item       ItemKey
	Action     Action
	Name       string
	ExistingID int64
	Note       string
}

// PipelineProposal is the decision about a pipeline and each of its stages.
type PipelineProposal struct {
	Key PipelineKey
	Decision
	Stages []StageProposal
}

// StageProposal is the decision about the stage of one state.
type StageProposal struct {
	State State
	Decision
}

// FieldProposal is the decision about one field. Type is the reused field's
// type or the type to create; Code is set for predefined fields. Values is
// set when the field's type has enums and the datum has a closed set of
// values: on reuse each carries the matched enum's id, on create the enum
// text to create.
type FieldProposal struct {
	Entity Entity
	Datum  Datum
	Decision
	Code   string
	Type   FieldType
	Values []ValueProposal
}

// ValueProposal is one value of an enumerated datum: Name is the enum's text
// and EnumID its id when the enum already exists.
type ValueProposal struct {
	Key    string
	Name   string
	EnumID int64
}

// Proposal is what autosetup will do for the ticked blocks; items of
// unticked blocks are absent.
type Proposal struct {
	Blocks    []Block
	Pipelines []PipelineProposal
	Contact   []FieldProposal
	Lead      []FieldProposal
}

// Has reports whether the block was ticked.
func (p Proposal) Has(b Block) bool { return slices.Contains(p.Blocks, b) }

// Fields returns the proposal's fields of the entity.
func (p Proposal) Fields(e Entity) []FieldProposal {
	if e == EntityContact {
		return p.Contact
	}
	return p.Lead
}

// ToCreate lists the items the proposal creates, in the order they are to be
// created: pipelines, stages, contact fields, lead fields. It is empty when
// everything already exists.
func (p Proposal) ToCreate() []ItemKey {
	var out []ItemKey
	for _, pp := range p.Pipelines {
		if pp.Action == ActionCreate {
			out = append(out, pp.Item)
		}
	}
	for _, pp := range p.Pipelines {
		for _, sp := range pp.Stages {
			if sp.Action == ActionCreate {
				out = append(out, sp.Item)
			}
		}
	}
	for _, fields := range [][]FieldProposal{p.Contact, p.Lead} {
		for _, fp := range fields {
			if fp.Action == ActionCreate {
				out = append(out, fp.Item)
			}
		}
	}
	return out
}

// Propose decides, for every item of the plan in the ticked blocks, whether
// an existing amoCRM item is reused or a new one created.
//
// Reuse rules: a pipeline is reused when a non-archived pipeline has the same
// normalised name (the lowest id of several); a stage is reused inside a
// reused pipeline when a non-system stage has the same normalised name; a
// field is reused when a field of the entity has the same normalised name and
// a compatible type (a select or radiobutton must also have an enum for each
// value of an enumerated datum); predefined PHONE and EMAIL are found by code.
// Everything else is created, under the user's rename when there is one.
//
// A default name taken by an item that cannot be reused (a field of an
// incompatible type, a system stage) is not fatal: the item is created as
// name+FallbackSuffix, or that item is reused if it already exists, and the
// decision's Note says so. A rename taken that way is refused.
//
// Errors, all *ItemError naming the item and joined when there are several:
// ErrUnknownBlock (blocks empty or unknown), ErrUnknownItem, ErrNotRenamable
// and ErrInvalidName for bad renames, ErrNameCollision (two items of one
// pipeline or card under one name, or a rename taken by an item that cannot
// be reused), ErrCapExceeded (pipelines, stages or fields over the account's
// caps), ErrInvalidPlan.
func Propose(plan Plan, snapshot Snapshot, blocks []Block, renames map[ItemKey]string) (Proposal, error) {
	if err := plan.check(); err != nil {
		return Proposal{}, err
	}
	ticked, err := checkBlocks(blocks)
	if err != nil {
		return Proposal{}, err
	}
	names, err := checkRenames(plan, renames)
	if err != nil {
		return Proposal{}, err
	}
	pr := proposer{plan: plan, snap: snapshot, renames: names}
	prop := Proposal{Blocks: ticked}
	if prop.Has(BlockPipelines) {
		prop.Pipelines = pr.pipelines()
	}
	if prop.Has(BlockContact) {
		prop.Contact = pr.fields(EntityContact)
	}
	if prop.Has(BlockLead) {
		prop.Lead = pr.fields(EntityLead)
	}
	if len(pr.errs) > 0 {
		return Proposal{}, errors.Join(pr.errs...)
	}
	return prop, nil
}

func checkBlocks(blocks []Block) ([]Block, error) {
	if len(blocks) == 0 {
		return nil, newItemError("", ErrUnknownBlock, "Выберите хотя бы один блок автонастройки")
	}
	var out []Block
	for _, b := range AllBlocks() {
		if slices.Contains(blocks, b) {
			out = append(out, b)
		}
	}
	for _, b := range blocks {
		if !slices.Contains(out, b) {
			return nil, newItemError("", ErrUnknownBlock, fmt.Sprintf("Неизвестный блок автонастройки «%s»", b))
		}
	}
	return out, nil
}

// checkRenames validates the renames and returns them tidied (spaces
// collapsed and trimmed). Renames of items in unticked blocks are validated
// too but have no effect.
func checkRenames(plan Plan, renames map[ItemKey]string) (map[ItemKey]string, error) {
	known := map[ItemKey]string{} // item → what it is, for messages
	predefined := map[ItemKey]bool{}
	for _, ps := range plan.Pipelines {
		known[ps.Item()] = fmt.Sprintf("воронку «%s»", ps.Name)
		for _, st := range ps.Stages {
			known[StageItem(ps.Key, st.State)] = fmt.Sprintf("этап «%s» воронки «%s»", st.Name, ps.Name)
		}
	}
	for _, fs := range append(slices.Clone(plan.Contact), plan.Lead...) {
		known[fs.Item()] = fmt.Sprintf("поле «%s» (%s)", fs.Name, fs.Entity.Label())
		predefined[fs.Item()] = fs.Code != ""
	}
	out := make(map[ItemKey]string, len(renames))
	// Sorted, so the first error reported is the same every time.
	for _, item := range slices.Sorted(maps.Keys(renames)) {
		name := strings.Join(strings.Fields(renames[item]), " ")
		what, ok := known[item]
		switch {
		case !ok:
			return nil, newItemError(item, ErrUnknownItem, fmt.Sprintf("Нет такого элемента настройки: %s", item))
		case predefined[item]:
			return nil, newItemError(item, ErrNotRenamable, fmt.Sprintf("Нельзя переименовать %s: это стандартное поле amoCRM", what))
		case Normalize(name) == "":
			return nil, newItemError(item, ErrInvalidName, fmt.Sprintf("Укажите название: %s", what))
		}
		out[item] = name
	}
	return out, nil
}

type proposer struct {
	plan    Plan
	snap    Snapshot
	renames map[ItemKey]string
	errs    []error
}

func (pr *proposer) fail(item ItemKey, kind error, format string, args ...any) {
	pr.errs = append(pr.errs, newItemError(item, kind, fmt.Sprintf(format, args...)))
}

// wanted is the name an item is to have: the rename or the plan's name.
type wanted struct {
	item    ItemKey
	name    string
	renamed bool
	what    string // the item in messages: «этап «Отменён» воронки …»
}

func (pr *proposer) want(item ItemKey, name, what string) wanted {
	if r, ok := pr.renames[item]; ok {
		return wanted{item: item, name: r, renamed: true, what: what}
	}
	return wanted{item: item, name: name, what: what}
}

// distinct reports items of one scope (a pipeline's stages, a card's fields,
// the pipelines) that want the same name. It returns false if it failed.
func (pr *proposer) distinct(ws []wanted) bool {
	ok := true
	byName := map[string]wanted{}
	for _, w := range ws {
		n := Normalize(w.name)
		other, dup := byName[n]
		if !dup {
			byName[n] = w
			continue
		}
		ok = false
		blame, with := w, other
		if !w.renamed && other.renamed {
			blame, with = other, w
		}
		kind := ErrNameCollision
		if !blame.renamed {
			kind = ErrInvalidPlan
		}
		pr.fail(blame.item, kind, "Название «%s» уже занято: %s", blame.name, with.what)
	}
	return ok
}

func (pr *proposer) pipelines() []PipelineProposal {
	ws := make([]wanted, 0, len(pr.plan.Pipelines))
	for _, ps := range pr.plan.Pipelines {
		ws = append(ws, pr.want(ps.Item(), ps.Name, fmt.Sprintf("воронка «%s»", ps.Name)))
	}
	if !pr.distinct(ws) {
		return nil
	}
	out := make([]PipelineProposal, 0, len(ws))
	var creating []PipelineProposal
	for i, ps := range pr.plan.Pipelines {
		w := ws[i]
		pp := PipelineProposal{Key: ps.Key, Decision: Decision{Item: w.item, Action: ActionCreate, Name: w.name}}
		existing, found := pr.findPipeline(w.name)
		if found {
			pp.Action, pp.Name, pp.ExistingID = ActionReuse, existing.Name, existing.ID
			pp.Stages = pr.stagesIn(ps, existing)
		} else {
			pp.Stages = pr.stagesNew(ps, w.name)
			creating = append(creating, pp)
		}
		out = append(out, pp)
	}
	limit := pr.snap.Limits.pipelines()
	have := len(pr.snap.Pipelines)
	if free := max(limit-have, 0); len(creating) > free {
		first := creating[free]
		pr.fail(first.Item, ErrCapExceeded,
			"Нельзя создать воронку «%s»: в аккаунте %s из %d возможных, свободно %d, а нужно создать %d. Удалите лишние воронки или выберите существующие в гибкой настройке",
			first.Name, count(have, "воронка", "воронки", "воронок"), limit, free, len(creating))
	}
	return out
}

// findPipeline returns the non-archived pipeline of that name with the lowest
// id. Archived pipelines count toward the cap but are never reused: their
// leads are hidden from managers.
func (pr *proposer) findPipeline(name string) (Pipeline, bool) {
	var best Pipeline
	found := false
	for _, p := range pr.snap.Pipelines {
		if !p.Archived && SameName(p.Name, name) && (!found || p.ID < best.ID) {
			best, found = p, true
		}
	}
	return best, found
}

func (pr *proposer) stageWants(ps PipelineSpec, pipelineName string) []wanted {
	ws := make([]wanted, 0, len(ps.Stages))
	for _, st := range ps.Stages {
		ws = append(ws, pr.want(StageItem(ps.Key, st.State), st.Name,
			fmt.Sprintf("этап «%s» воронки «%s»", st.Name, pipelineName)))
	}
	return ws
}

func (pr *proposer) stagesNew(ps PipelineSpec, pipelineName string) []StageProposal {
	ws := pr.stageWants(ps, pipelineName)
	if !pr.distinct(ws) {
		return nil
	}
	if limit := pr.snap.Limits.stagesPerPipeline(); SystemStagesInPipeline+len(ws) > limit {
		first := ws[max(limit-SystemStagesInPipeline, 0)]
		pr.fail(first.item, ErrCapExceeded, "Нельзя создать этап «%s» воронки «%s»: в воронке не больше %d этапов", first.name, pipelineName, limit)
	}
	out := make([]StageProposal, 0, len(ws))
	for i, st := range ps.Stages {
		out = append(out, StageProposal{State: st.State, Decision: Decision{Item: ws[i].item, Action: ActionCreate, Name: ws[i].name}})
	}
	return out
}

func (pr *proposer) stagesIn(ps PipelineSpec, p Pipeline) []StageProposal {
	ws := pr.stageWants(ps, p.Name)
	if !pr.distinct(ws) {
		return nil
	}
	taken := map[string]bool{}
	for _, w := range ws {
		taken[Normalize(w.name)] = true
	}
	find := func(name string) (reuse Stage, found, system bool) {
		for _, st := range p.Stages {
			if !SameName(st.Name, name) {
				continue
			}
			if st.System() {
				system = true
				continue
			}
			if !found || st.ID < reuse.ID {
				reuse, found = st, true
			}
		}
		return reuse, found, system
	}
	out := make([]StageProposal, 0, len(ws))
	var creating []StageProposal
	for i, st := range ps.Stages {
		w := ws[i]
		sp := StageProposal{State: st.State, Decision: Decision{Item: w.item, Action: ActionCreate, Name: w.name}}
		existing, found, system := find(w.name)
		switch {
		case found:
			sp.Action, sp.Name, sp.ExistingID = ActionReuse, existing.Name, existing.ID
		case system && w.renamed:
			pr.fail(w.item, ErrNameCollision, "Название «%s» занято системным этапом воронки «%s»: выберите другое", w.name, p.Name)
		case system:
			alt := w.name + FallbackSuffix
			existing, found, system = find(alt)
			switch {
			case taken[Normalize(alt)] || system:
				pr.fail(w.item, ErrNameCollision, "Названия «%s» и «%s» в воронке «%s» заняты: переименуйте этап", w.name, alt, p.Name)
			case found:
				sp.Action, sp.Name, sp.ExistingID = ActionReuse, existing.Name, existing.ID
				sp.Note = fmt.Sprintf("«%s» — системный этап amoCRM, используем этап «%s»", w.name, existing.Name)
			default:
				sp.Name = alt
				sp.Note = fmt.Sprintf("«%s» — системный этап amoCRM, создадим этап «%s»", w.name, alt)
			}
		}
		if sp.Action == ActionCreate {
			creating = append(creating, sp)
		}
		out = append(out, sp)
	}
	limit := pr.snap.Limits.stagesPerPipeline()
	if free := max(limit-len(p.Stages), 0); len(creating) > free {
		first := creating[free]
		pr.fail(first.Item, ErrCapExceeded,
			"Нельзя создать этап «%s» в воронке «%s»: в ней %s из %d возможных, свободно %d, а нужно создать %d",
			first.Name, p.Name, count(len(p.Stages), "этап", "этапа", "этапов"), limit, free, len(creating))
	}
	return out
}

func (pr *proposer) fields(e Entity) []FieldProposal {
	specs := pr.plan.Fields(e)
	existing := pr.snap.Fields(e)
	ws := make([]wanted, 0, len(specs))
	for _, fs := range specs {
		ws = append(ws, pr.want(fs.Item(), fs.Name, fmt.Sprintf("поле «%s» (%s)", fs.Name, e.Label())))
	}
	if !pr.distinct(ws) {
		return nil
	}
	taken := map[string]bool{}
	for _, w := range ws {
		taken[Normalize(w.name)] = true
	}
	claimed := map[int64]bool{}
	out := make([]FieldProposal, len(specs))
	// Predefined fields first: they claim their amoCRM field by code, so no
	// other datum reuses it by name.
	for i, fs := range specs {
		if fs.Code == "" {
			continue
		}
		fp := FieldProposal{Entity: e, Datum: fs.Datum, Code: fs.Code, Decision: Decision{Item: fs.Item(), Action: ActionSkip, Name: fs.Name}}
		for _, f := range existing {
			if f.Code == fs.Code && fs.Accepts(f.Type) {
				fp.Action, fp.Name, fp.ExistingID, fp.Type = ActionReuse, f.Name, f.ID, f.Type
				claimed[f.ID] = true
				break
			}
		}
		if fp.Action == ActionSkip {
			fp.Note = fmt.Sprintf("В amoCRM нет стандартного поля «%s»: данные не будут передаваться", fs.Name)
		}
		out[i] = fp
	}
	var creating []FieldProposal
	for i, fs := range specs {
		if fs.Code != "" {
			continue
		}
		w := ws[i]
		fp := FieldProposal{Entity: e, Datum: fs.Datum, Decision: Decision{Item: w.item, Action: ActionCreate, Name: w.name}, Type: fs.Create}
		reuse, found, blocker := pr.findField(fs, existing, w.name, claimed)
		switch {
		case found:
			pr.reuseField(&fp, fs, reuse)
			claimed[reuse.ID] = true
		case blocker != nil && w.renamed:
			pr.fail(w.item, ErrNameCollision, "Название «%s» занято полем amoCRM типа «%s», которое не подходит для «%s» (нужен тип %s): выберите другое",
				w.name, blocker.Type.Label(), fs.Name, typeList(fs.Compatible))
		case blocker != nil:
			alt := w.name + FallbackSuffix
			altReuse, altFound, altBlocker := pr.findField(fs, existing, alt, claimed)
			switch {
			case taken[Normalize(alt)] || altBlocker != nil && !altFound:
				pr.fail(w.item, ErrNameCollision, "Названия «%s» и «%s» (%s) заняты неподходящими полями: переименуйте поле", w.name, alt, e.Label())
			case altFound:
				pr.reuseField(&fp, fs, altReuse)
				claimed[altReuse.ID] = true
				fp.Note = fmt.Sprintf("Поле «%s» в amoCRM имеет неподходящий тип «%s», используем поле «%s»", blocker.Name, blocker.Type.Label(), altReuse.Name)
			default:
				fp.Name = alt
				fp.Note = fmt.Sprintf("Поле «%s» в amoCRM имеет неподходящий тип «%s», создадим поле «%s»", blocker.Name, blocker.Type.Label(), alt)
			}
		}
		if fp.Action == ActionCreate {
			if fp.Type.HasEnums() {
				for _, v := range fs.Values {
					fp.Values = append(fp.Values, ValueProposal{Key: v.Key, Name: v.Name})
				}
			}
			creating = append(creating, fp)
		}
		out[i] = fp
	}
	if limit := pr.snap.Limits.MaxFieldsPerEntity; limit > 0 {
		if free := max(limit-len(existing), 0); len(creating) > free {
			first := creating[free]
			pr.fail(first.Item, ErrCapExceeded,
				"Нельзя создать поле «%s» (%s): в карточке %s из %d возможных, свободно %d, а нужно создать %d",
				first.Name, e.Label(), count(len(existing), "поле", "поля", "полей"), limit, free, len(creating))
		}
	}
	return out
}

// findField returns the best reusable field of that name — the first type in
// the spec's preference order, then the lowest id — or, when fields of that
// name exist but none fits, one of them as the blocker.
func (pr *proposer) findField(fs FieldSpec, existing []Field, name string, claimed map[int64]bool) (reuse Field, found bool, blocker *Field) {
	rank := func(t FieldType) int { return slices.Index(fs.Compatible, t) }
	for i := range existing {
		f := existing[i]
		if !SameName(f.Name, name) {
			continue
		}
		if claimed[f.ID] || !fs.Accepts(f.Type) || !enumsCover(fs, f) {
			if blocker == nil {
				blocker = &existing[i]
			}
			continue
		}
		if !found || rank(f.Type) < rank(reuse.Type) || (rank(f.Type) == rank(reuse.Type) && f.ID < reuse.ID) {
			reuse, found = f, true
		}
	}
	return reuse, found, blocker
}

func (pr *proposer) reuseField(fp *FieldProposal, fs FieldSpec, f Field) {
	fp.Action, fp.Name, fp.ExistingID, fp.Type = ActionReuse, f.Name, f.ID, f.Type
	if !f.Type.HasEnums() {
		return
	}
	for _, v := range fs.Values {
		en, _ := matchEnum(v, f.Enums)
		fp.Values = append(fp.Values, ValueProposal{Key: v.Key, Name: en.Value, EnumID: en.ID})
	}
}

// enumsCover reports whether an enumerated field has an enum for every value
// of the datum; other fields always do.
func enumsCover(fs FieldSpec, f Field) bool {
	if !f.Type.HasEnums() {
		return true
	}
	used := map[int64]bool{}
	for _, v := range fs.Values {
		en, ok := matchEnum(v, f.Enums)
		if !ok || used[en.ID] {
			return false
		}
		used[en.ID] = true
	}
	return true
}

// matchEnum finds the enum whose text is the value's name or an alias.
func matchEnum(v ValueSpec, enums []Enum) (Enum, bool) {
	for _, name := range append([]string{v.Name}, v.Aliases...) {
		for _, en := range enums {
			if SameName(en.Value, name) {
				return en, true
			}
		}
	}
	return Enum{}, false
}

func typeList(types []FieldType) string {
	labels := make([]string, 0, len(types))
	for _, t := range types {
		labels = append(labels, "«"+t.Label()+"»")
	}
	return strings.Join(labels, " или ")
}

// count spells n with the Russian plural form: 1 воронка, 3 воронки, 5 воронок.
func count(n int, one, few, many string) string {
	form := many
	switch n10, n100 := n%10, n%100; {
	case n10 == 1 && n100 != 11:
		form = one
	case n10 >= 2 && n10 <= 4 && (n100 < 12 || n100 > 14):
		form = few
	}
	return fmt.Sprintf("%d %s", n, form)
}
