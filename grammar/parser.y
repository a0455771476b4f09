/*
 * parser.y — the grammar of .net files: a pure (reentrant) bison parser with
 * locations that builds the AST of compiler/ast.h.
 *
 * One grammar serves three entry points, chosen by a start token that the
 * scanner hands out first: a whole file, a single expression (--set values,
 * label interpolations) and a single augmentation pipeline (rxc transform).
 * Syntax errors are reported through the Diag with the offending token's
 * position; the parser recovers at statement and declaration boundaries so
 * that one run reports several errors.
 */
%code requires {
#include <stdint.h>
#include "ast.h"

typedef struct Tok {
    int64_t i;
    double f;
    const char *s;  /* identifier / string contents; the spelling of a FLOAT */
} Tok;

/* Everything one parse needs: shared by the scanner (as its extra data) and
 * the parser (as its parse parameter). */
typedef struct ParseCtx {
    Diag *d;
    const char *file;
    Arena *arena;
    AstFile *out;          /* START_FILE: where declarations go */
    int start_token;       /* handed out once before the first real token */
    AstExpr *expr;         /* START_EXPR result */
    AstExpr **ops;         /* START_PIPELINE result */
    int n_ops;
    int errors;
    int line, col;         /* scanner position of the next character */
    const char *tok_text;  /* the current token's text, for messages */
    int tok_len;
    int last_error_line;   /* one syntax error per line is enough */
    int cur_end_line, cur_end_col;   /* where the latest token ended */
    int prev_end_line, prev_end_col; /* where the token before it ended */
    int brace_depth;       /* current nesting of { } (the scanner counts) */
    int last_tok;          /* the latest token (yylex in lexer.l), to tell x[ from a list's [ */
    int ident_run;         /* names in a row up to the latest token */
    bool run_at_edge;      /* that run began where a declaration may: `name value name value ...` */
    int open_depth;        /* brackets ( [ { open; open_kind[] the innermost RXC_OPEN_KINDS of them */
    char open_kind[64];    /* 'i': x[ (a ':' directly inside is a slice's), 'l': a list's [, 'p': ( or { */
    bool too_deep;         /* the nesting error was reported */
} ParseCtx;

#define YYLTYPE_IS_DECLARED 1
typedef struct YYLTYPE { int first_line, first_column, last_line, last_column; } YYLTYPE;
}

%code provides {
int yylex(YYSTYPE *lval, YYLTYPE *lloc, void *scanner);
}

%code {
#include <stdio.h>
#include <string.h>
#include "lexer.h"

static SrcLoc at(const ParseCtx *pc, YYLTYPE l) {
    SrcLoc s = {pc->file, l.first_line, l.first_column};
    return s;
}
#define LOC(l) at(pc, (l))

static void yyerror(YYLTYPE *l, void *scanner, ParseCtx *pc, const char *msg) {
    (void)scanner;
    pc->errors++;
    if (!strcmp(msg, "memory exhausted")) return; /* run_parser reports the nesting */
    diag_error(pc->d, at(pc, *l), "%s", msg);
}

/* Arrays in the arena grow by doubling when their length reaches a power of
 * two, so no capacity field is needed. */
static void *push(Arena *a, void *items, int n, size_t elem) {
    if (n == 0 || (n & (n - 1)) == 0) {
        void *bigger = arena_alloc(a, (size_t)(n ? 2 * n : 2) * elem);
        if (n) memcpy(bigger, items, (size_t)n * elem);
        return bigger;
    }
    return items;
}
#define PUSH(arena, arr, n, item) do { (arr) = push((arena), (arr), (n), sizeof *(arr)); (arr)[(n)++] = (item); } while (0)

static AstExpr *mk(ParseCtx *pc, AstExprKind k, YYLTYPE l) {
    AstExpr *e = arena_alloc(pc->arena, sizeof *e);
    e->kind = k;
    e->loc = at(pc, l);
    e->depth = 1;
    return e;
}
static int depth_of(const AstExpr *e) { return e ? e->depth : 0; }
static int max_int(int a, int b) { return a > b ? a : b; }

/* Sets e's depth from its children; past the limit, reports once and
 * returns a leaf in its place so that the tree stays shallow. */
static AstExpr *deep(ParseCtx *pc, AstExpr *e) {
    int d = 0;
    switch (e->kind) {
    case EX_LIST: for (int i = 0; i < e->v.list.n; i++) d = max_int(d, depth_of(e->v.list.items[i])); break;
    case EX_UNARY: d = depth_of(e->v.unary.x); break;
    case EX_BINARY: d = max_int(depth_of(e->v.binary.a), depth_of(e->v.binary.b)); break;
    case EX_CALL:
        for (int i = 0; i < e->v.call.n_args; i++) d = max_int(d, depth_of(e->v.call.args[i].value));
        if (e->v.call.label)
            for (int i = 0; i < e->v.call.label->n_parts; i++) d = max_int(d, depth_of(e->v.call.label->parts[i].expr));
        break;
    case EX_INDEX: d = max_int(depth_of(e->v.index.base), depth_of(e->v.index.index)); break;
    case EX_IF: d = max_int(depth_of(e->v.cond.c), max_int(depth_of(e->v.cond.then), depth_of(e->v.cond.otherwise))); break;
    case EX_RANGE: d = max_int(depth_of(e->v.range.lo), depth_of(e->v.range.hi)); break;
    default: break;
    }
    e->depth = d + 1;
    if (e->depth <= AST_MAX_EXPR_DEPTH) return e;
    if (!pc->too_deep) {
        pc->too_deep = true;
        diag_error(pc->d, e->loc, "expression is nested too deeply (more than %d levels)", AST_MAX_EXPR_DEPTH);
    }
    pc->errors++;
    AstExpr *leaf = arena_alloc(pc->arena, sizeof *leaf);
    leaf->kind = EX_INT;
    leaf->loc = e->loc;
    leaf->depth = 1;
    return leaf;
}

/* base[lo..hi] or base[lo:hi] (the same slice); an omitted bound (NULL) is
 * 0 at the start, AST_SLICE_END ("to the end") at the end. */
static AstExpr *index_range(ParseCtx *pc, AstExpr *base, AstExpr *lo, AstExpr *hi, YYLTYPE bracket, YYLTYPE first) {
    AstExpr *r = mk(pc, EX_RANGE, first);
    if (!lo) {
        lo = mk(pc, EX_INT, first);
        lo->v.i = 0;
    }
    if (!hi) {
        hi = mk(pc, EX_INT, first);
        hi->v.i = AST_SLICE_END;
    }
    r->v.range.lo = lo;
    r->v.range.hi = hi;
    r->depth = max_int(lo->depth, hi->depth) + 1;
    AstExpr *x = mk(pc, EX_INDEX, bracket);
    x->v.index.base = base;
    x->v.index.index = r;
    return deep(pc, x);
}

static AstExpr *bin(ParseCtx *pc, AstBinOp op, AstExpr *a, AstExpr *b, YYLTYPE l) {
    AstExpr *e = mk(pc, EX_BINARY, l);
    e->v.binary.op = op; e->v.binary.a = a; e->v.binary.b = b;
    return deep(pc, e);
}
static AstExpr *un(ParseCtx *pc, AstUnOp op, AstExpr *x, YYLTYPE l) {
    AstExpr *e = mk(pc, EX_UNARY, l);
    e->v.unary.op = op; e->v.unary.x = x;
    return deep(pc, e);
}
static AstStmt *stmt(ParseCtx *pc, AstStmtKind k, YYLTYPE l) {
    AstStmt *s = arena_alloc(pc->arena, sizeof *s);
    s->kind = k;
    s->loc = at(pc, l);
    s->name_loc = s->loc;
    return s;
}
static AstDecl *decl(ParseCtx *pc, AstDeclKind k, YYLTYPE l) {
    AstDecl *d = arena_alloc(pc->arena, sizeof *d);
    d->kind = k;
    d->loc = at(pc, l);
    d->name_loc = d->loc;
    return d;
}
static void add_decl(ParseCtx *pc, AstDecl *d) {
    if (!d || !pc->out) return;
    AstFile *f = pc->out;
    GROW(f->decls, f->cap_decls, f->n_decls + 1);
    f->decls[f->n_decls++] = d;
}
static AstExpr *dims_list(ParseCtx *pc, const char *text, YYLTYPE l) {
    AstExpr *e = mk(pc, EX_LIST, l);
    e->v.list.dims = true;
    const char *p = text;
    int col = l.first_column;
    for (;;) {
        YYLTYPE il = l;
        il.first_column = col;
        AstExpr *item = mk(pc, EX_INT, il);
        int64_t v = 0;
        bool big = false;
        const char *start = p;
        while (*p >= '0' && *p <= '9') {
            if (v > (INT64_MAX - 9) / 10) big = true; else v = v * 10 + (*p - '0');
            p++;
        }
        if (big) {
            pc->errors++;
            diag_error(pc->d, at(pc, il), "integer literal is too large");
        }
        item->v.i = v;
        PUSH(pc->arena, e->v.list.items, e->v.list.n, item);
        col += (int)(p - start);
        if (*p != 'x') break;
        p++;
        col++;
    }
    return e;
}

/* A template label "layer{s+1}.{i}": literal parts and expressions parsed
 * from the braces. Columns inside the string are approximate when it holds
 * escapes. */
static AstLabel *template_label(ParseCtx *pc, const char *text, YYLTYPE l) {
    AstLabel *lab = arena_alloc(pc->arena, sizeof *lab);
    lab->loc = at(pc, l);
    const char *p = text;
    while (*p) {
        const char *open = strchr(p, '{');
        const char *close = strchr(p, '}');
        if (close && (!open || close < open)) {
            SrcLoc el = lab->loc; el.col += 1 + (int)(close - text);
            pc->errors++;
            diag_error(pc->d, el, "unmatched '}' in label");
            return lab;
        }
        if (!open) {
            AstLabelPart part = {arena_strdup(pc->arena, p), NULL};
            PUSH(pc->arena, lab->parts, lab->n_parts, part);
            break;
        }
        if (open > p) {
            AstLabelPart part = {arena_strndup(pc->arena, p, (size_t)(open - p)), NULL};
            PUSH(pc->arena, lab->parts, lab->n_parts, part);
        }
        SrcLoc el = lab->loc; el.col += 2 + (int)(open - text);
        if (!close) {
            el.col--;
            pc->errors++;
            diag_error(pc->d, el, "unterminated '{' in label");
            return lab;
        }
        AstExpr *e = ast_parse_expr(pc->d, pc->file, open + 1, (size_t)(close - open - 1), el, pc->arena);
        if (!e) {
            pc->errors++;
            return lab;
        }
        AstLabelPart part = {NULL, e};
        PUSH(pc->arena, lab->parts, lab->n_parts, part);
        p = close + 1;
    }
    if (lab->n_parts == 0) {
        pc->errors++;
        diag_error(pc->d, lab->loc, "empty label");
    }
    return lab;
}

static AstExpr *label_call(ParseCtx *pc, AstLabel *lab, AstExpr *call) {
    call->v.call.label = lab;
    return deep(pc, call);
}
}

%define api.pure full
%define parse.error custom
%locations
%lex-param {void *scanner}
%parse-param {void *scanner} {ParseCtx *pc}

%union {
    Tok tok;
    AstExpr *expr;
    AstStmt *stmt;
    AstBody body;
    AstDecl *decl;
    struct { AstArg *items; int n; } args;
    struct { AstParam *items; int n; } params;
    struct { AstExpr **items; int n; } list;
    AstLabel *label;
    StrBuf *path;
}

%token START_FILE START_EXPR START_PIPELINE
%token <tok> IDENT "identifier" INT "integer" FLOAT "number" STRING "string" DIMS "dimensions"
%token NETWORK "'network'" BLOCK "'block'" INCLUDE "'include'" DATA "'data'" AUGMENT "'augment'"
%token TRAIN "'train'" RETURN "'return'" IF "'if'" THEN "'then'" ELSE "'else'" FOR "'for'"
%token IN "'in'" AND "'and'" OR "'or'" NOT "'not'" TRUE "'true'" FALSE "'false'" ASSERT "'assert'"
%token SLICE_COLON "':' (slice)"
%token ARROW "'->'" DOTDOT "'..'" IDIV "'//'" EQ "'=='" NE "'!='" LE "'<='" GE "'>='"

%type <expr> expr postfix primary call pipe_op iterable
%type <stmt> statement if_stmt
%type <body> body stmts
%type <decl> declaration
%type <args> args arglist named_args
%type <params> params paramlist
%type <list> items itemlist pipeline
%type <label> label
%type <tok> path

%precedence ELSE
%left OR
%left AND
%precedence NOT
%nonassoc EQ NE '<' LE '>' GE
%left '+' '-'
%left '*' '/' IDIV '%'
%precedence UMINUS
%right '^'

%start start

%%

start
    : START_FILE decls
    | START_EXPR expr             { pc->expr = $2; }
    | START_PIPELINE pipeline     { pc->ops = $2.items; pc->n_ops = $2.n; }
    ;

decls
    : %empty
    | decls declaration           { add_decl(pc, $2); }
    | decls ';'
    ;

declaration
    : INCLUDE STRING              { $$ = decl(pc, DECL_INCLUDE, @1); $$->name = $2.s; $$->name_loc = LOC(@2); }
    | IDENT '=' expr              { $$ = decl(pc, DECL_CONST, @1); $$->name = $1.s; $$->name_loc = LOC(@1);
                                    $$->stmt = stmt(pc, ST_LET, @1); $$->stmt->name = $1.s; $$->stmt->value = $3; }
    | BLOCK IDENT '(' params ')' body
                                  { $$ = decl(pc, DECL_BLOCK, @1); $$->name = $2.s; $$->name_loc = LOC(@2);
                                    $$->params = $4.items; $$->n_params = $4.n; $$->body = $6; }
    | NETWORK IDENT body          { $$ = decl(pc, DECL_NETWORK, @1); $$->name = $2.s; $$->name_loc = LOC(@2); $$->body = $3; }
    | DATA body                   { $$ = decl(pc, DECL_DATA, @1); $$->body = $2; }
    | TRAIN body                  { $$ = decl(pc, DECL_TRAIN, @1); $$->body = $2; }
    | AUGMENT IDENT ':' pipeline  { $$ = decl(pc, DECL_AUGMENT, @1); $$->name = $2.s; $$->name_loc = LOC(@2);
                                    $$->ops = $4.items; $$->n_ops = $4.n; }
    | AUGMENT TRAIN ':' pipeline  { $$ = decl(pc, DECL_AUGMENT, @1); $$->name = "train"; $$->name_loc = LOC(@2);
                                    $$->ops = $4.items; $$->n_ops = $4.n; }
    | error                       { $$ = NULL; }
    ;

params
    : %empty                      { $$.items = NULL; $$.n = 0; }
    | paramlist                   { $$ = $1; }
    | paramlist ','               { $$ = $1; }
    ;
paramlist
    : IDENT                       { $$.items = NULL; $$.n = 0; AstParam p = {$1.s, LOC(@1), NULL}; PUSH(pc->arena, $$.items, $$.n, p); }
    | IDENT '=' expr              { $$.items = NULL; $$.n = 0; AstParam p = {$1.s, LOC(@1), $3}; PUSH(pc->arena, $$.items, $$.n, p); }
    | paramlist ',' IDENT         { $$ = $1; AstParam p = {$3.s, LOC(@3), NULL}; PUSH(pc->arena, $$.items, $$.n, p); }
    | paramlist ',' IDENT '=' expr { $$ = $1; AstParam p = {$3.s, LOC(@3), $5}; PUSH(pc->arena, $$.items, $$.n, p); }
    ;

body
    : '{' stmts '}'               { $$ = $2; }
    ;

stmts
    : %empty                      { $$.items = NULL; $$.n = 0; }
    | stmts statement             { $$ = $1; if ($2) PUSH(pc->arena, $$.items, $$.n, $2); }
    | stmts ';'                   { $$ = $1; }
    ;

statement
    : IDENT expr                  { $$ = stmt(pc, ST_SETTING, @1); $$->name = $1.s; $$->value = $2; }
    | IDENT '=' expr              { $$ = stmt(pc, ST_LET, @1); $$->name = $1.s; $$->value = $3; }
    | IDENT '(' named_args ')' { $$ = stmt(pc, ST_SETTING, @1); $$->name = $1.s;
                                    $$->value = mk(pc, EX_CALL, @1); $$->value->v.call.callee = $1.s;
                                    $$->value->v.call.callee_loc = LOC(@1); $$->value->v.call.args = $3.items;
                                    $$->value->v.call.n_args = $3.n; $$->value = deep(pc, $$->value); }
    | if_stmt                     { $$ = $1; }
    | FOR IDENT IN iterable body  { $$ = stmt(pc, ST_FOR, @1); $$->name = $2.s; $$->name_loc = LOC(@2);
                                    $$->value = $4; $$->body = $5; }
    | RETURN expr                 { $$ = stmt(pc, ST_RETURN, @1); $$->value = $2; }
    | ASSERT expr                 { $$ = stmt(pc, ST_ASSERT, @1); $$->value = $2; }
    | ASSERT expr ',' STRING      { $$ = stmt(pc, ST_ASSERT, @1); $$->value = $2; $$->message = $4.s; }
    | error                       { $$ = NULL; }
    ;

if_stmt
    : IF expr body                { $$ = stmt(pc, ST_IF, @1); $$->value = $2; $$->body = $3; }
    | IF expr body ELSE body      { $$ = stmt(pc, ST_IF, @1); $$->value = $2; $$->body = $3; $$->otherwise = $5; }
    | IF expr body ELSE if_stmt   { $$ = stmt(pc, ST_IF, @1); $$->value = $2; $$->body = $3;
                                    $$->otherwise.items = NULL; $$->otherwise.n = 0;
                                    PUSH(pc->arena, $$->otherwise.items, $$->otherwise.n, $5); }
    ;

iterable
    : expr                        { $$ = $1; }
    | expr DOTDOT expr            { $$ = mk(pc, EX_RANGE, @1); $$->v.range.lo = $1; $$->v.range.hi = $3; $$ = deep(pc, $$); }
    ;

expr
    : IF expr THEN expr ELSE expr { $$ = mk(pc, EX_IF, @1); $$->v.cond.c = $2; $$->v.cond.then = $4; $$->v.cond.otherwise = $6; $$ = deep(pc, $$); }
    | expr OR expr                { $$ = bin(pc, BIN_OR, $1, $3, @2); }
    | expr AND expr               { $$ = bin(pc, BIN_AND, $1, $3, @2); }
    | NOT expr                    { $$ = un(pc, UN_NOT, $2, @1); }
    | expr EQ expr                { $$ = bin(pc, BIN_EQ, $1, $3, @2); }
    | expr NE expr                { $$ = bin(pc, BIN_NE, $1, $3, @2); }
    | expr '<' expr               { $$ = bin(pc, BIN_LT, $1, $3, @2); }
    | expr LE expr                { $$ = bin(pc, BIN_LE, $1, $3, @2); }
    | expr '>' expr               { $$ = bin(pc, BIN_GT, $1, $3, @2); }
    | expr GE expr                { $$ = bin(pc, BIN_GE, $1, $3, @2); }
    | expr '+' expr               { $$ = bin(pc, BIN_ADD, $1, $3, @2); }
    | expr '-' expr               { $$ = bin(pc, BIN_SUB, $1, $3, @2); }
    | expr '*' expr               { $$ = bin(pc, BIN_MUL, $1, $3, @2); }
    | expr '/' expr               { $$ = bin(pc, BIN_DIV, $1, $3, @2); }
    | expr IDIV expr              { $$ = bin(pc, BIN_IDIV, $1, $3, @2); }
    | expr '%' expr               { $$ = bin(pc, BIN_MOD, $1, $3, @2); }
    | '-' expr %prec UMINUS       { $$ = un(pc, UN_NEG, $2, @1); }
    | expr '^' expr               { $$ = bin(pc, BIN_POW, $1, $3, @2); }
    | postfix                     { $$ = $1; }
    ;

postfix
    : primary                     { $$ = $1; }
    | postfix '[' expr ']'        { $$ = mk(pc, EX_INDEX, @2); $$->v.index.base = $1; $$->v.index.index = $3; $$ = deep(pc, $$); }
    | postfix '[' expr DOTDOT expr ']'      { $$ = index_range(pc, $1, $3, $5, @2, @3); }
    | postfix '[' expr SLICE_COLON expr ']' { $$ = index_range(pc, $1, $3, $5, @2, @3); }
    | postfix '[' SLICE_COLON expr ']'      { $$ = index_range(pc, $1, NULL, $4, @2, @3); }
    | postfix '[' expr SLICE_COLON ']'      { $$ = index_range(pc, $1, $3, NULL, @2, @3); }
    | postfix '[' expr SLICE_COLON expr SLICE_COLON expr ']'
                                  { diag_error(pc->d, at(pc, @6), "a slice has no step: x[c0:c1] takes channels c0 to c1 - 1");
                                    pc->errors++;
                                    $$ = index_range(pc, $1, $3, $5, @2, @3); }
    ;

primary
    : INT                         { $$ = mk(pc, EX_INT, @1); $$->v.i = $1.i; }
    | FLOAT                       { $$ = mk(pc, EX_FLOAT, @1); $$->v.f = $1.f; }
    | STRING                      { $$ = mk(pc, EX_STRING, @1); $$->v.s = $1.s; }
    | DIMS                        { $$ = dims_list(pc, $1.s, @1); }
    | TRUE                        { $$ = mk(pc, EX_BOOL, @1); $$->v.b = true; }
    | FALSE                       { $$ = mk(pc, EX_BOOL, @1); $$->v.b = false; }
    | IDENT                       { $$ = mk(pc, EX_NAME, @1); $$->v.name = $1.s; }
    | call                        { $$ = $1; }
    | label ':' call              { $$ = label_call(pc, $1, $3); }
    | '(' expr ')'                { $$ = $2; }
    | '[' items ']'               { $$ = mk(pc, EX_LIST, @1); $$->v.list.items = $2.items; $$->v.list.n = $2.n; $$ = deep(pc, $$); }
    ;

call
    : IDENT '(' args ')'          { $$ = mk(pc, EX_CALL, @1); $$->v.call.callee = $1.s; $$->v.call.callee_loc = LOC(@1);
                                    $$->v.call.args = $3.items; $$->v.call.n_args = $3.n; $$ = deep(pc, $$); }
    ;

label
    : path                        { $$ = arena_alloc(pc->arena, sizeof *$$); $$->loc = LOC(@1);
                                    AstLabelPart part = {$1.s, NULL}; PUSH(pc->arena, $$->parts, $$->n_parts, part); }
    | STRING                      { $$ = template_label(pc, $1.s, @1); }
    ;

path
    : IDENT                       { $$ = $1; }
    | path '.' IDENT              { $$.s = arena_alloc(pc->arena, strlen($1.s) + strlen($3.s) + 2);
                                    sprintf((char *)$$.s, "%s.%s", $1.s, $3.s); }
    | path '.' INT                { $$.s = arena_alloc(pc->arena, strlen($1.s) + 24);
                                    sprintf((char *)$$.s, "%s.%lld", $1.s, (long long)$3.i); }
    | path '.' FLOAT              { /* `downsample.0.1` scans `0.1` as a number: keep its digits */
                                    $$.s = arena_alloc(pc->arena, strlen($1.s) + strlen($3.s) + 2);
                                    sprintf((char *)$$.s, "%s.%s", $1.s, $3.s); }
    ;

args
    : %empty                      { $$.items = NULL; $$.n = 0; }
    | arglist                     { $$ = $1; }
    | arglist ','                 { $$ = $1; }
    ;
arglist
    : expr                        { $$.items = NULL; $$.n = 0; AstArg a = {NULL, $1->loc, $1}; PUSH(pc->arena, $$.items, $$.n, a); }
    | IDENT '=' expr              { $$.items = NULL; $$.n = 0; AstArg a = {$1.s, LOC(@1), $3}; PUSH(pc->arena, $$.items, $$.n, a); }
    | arglist ',' expr            { $$ = $1; AstArg a = {NULL, $3->loc, $3}; PUSH(pc->arena, $$.items, $$.n, a); }
    | arglist ',' IDENT '=' expr  { $$ = $1; AstArg a = {$3.s, LOC(@3), $5}; PUSH(pc->arena, $$.items, $$.n, a); }
    ;

/* a setting written as a call, `ema(decay=0.9998, every=1)`: named arguments
 * only, so that `key (expr)` keeps its meaning */
named_args
    : IDENT '=' expr              { $$.items = NULL; $$.n = 0; AstArg a = {$1.s, LOC(@1), $3}; PUSH(pc->arena, $$.items, $$.n, a); }
    | named_args ',' IDENT '=' expr { $$ = $1; AstArg a = {$3.s, LOC(@3), $5}; PUSH(pc->arena, $$.items, $$.n, a); }
    ;

items
    : %empty                      { $$.items = NULL; $$.n = 0; }
    | itemlist                    { $$ = $1; }
    | itemlist ','                { $$ = $1; }
    ;
itemlist
    : expr                        { $$.items = NULL; $$.n = 0; PUSH(pc->arena, $$.items, $$.n, $1); }
    | itemlist ',' expr           { $$ = $1; PUSH(pc->arena, $$.items, $$.n, $3); }
    ;

pipeline
    : pipe_op                     { $$.items = NULL; $$.n = 0; PUSH(pc->arena, $$.items, $$.n, $1); }
    | pipeline ARROW pipe_op      { $$ = $1; PUSH(pc->arena, $$.items, $$.n, $3); }
    ;
pipe_op
    : IDENT                       { $$ = mk(pc, EX_NAME, @1); $$->v.name = $1.s; }
    | call                        { $$ = $1; }
    ;

%%

/* Names tokens as a user reads them: 'foo' for the identifier foo, ')' for a
 * character, "end of file" at the end. */
static void describe_lookahead(const ParseCtx *pc, yysymbol_kind_t tok, StrBuf *b) {
    if (tok == YYSYMBOL_YYEOF) { sb_puts(b, "end of file"); return; }
    if (tok == YYSYMBOL_YYUNDEF || !pc->tok_text) { sb_puts(b, yysymbol_name(tok)); return; }
    int n = pc->tok_len > 40 ? 40 : pc->tok_len;
    switch (tok) {
    case YYSYMBOL_IDENT: sb_printf(b, "identifier '%.*s'", n, pc->tok_text); break;
    case YYSYMBOL_INT: case YYSYMBOL_FLOAT: sb_printf(b, "number %.*s", n, pc->tok_text); break;
    case YYSYMBOL_STRING: sb_printf(b, "string %.*s", n, pc->tok_text); break;
    case YYSYMBOL_DIMS: sb_printf(b, "dimensions %.*s", n, pc->tok_text); break;
    default: sb_printf(b, "'%.*s'", n, pc->tok_text); break;
    }
}

static const char *expected_name(yysymbol_kind_t k) {
    switch (k) {
    case YYSYMBOL_YYEOF: return "end of file";
    case YYSYMBOL_IDENT: return "a name";
    case YYSYMBOL_INT: case YYSYMBOL_FLOAT: return "a number";
    default: return yysymbol_name(k);
    }
}

static int yyreport_syntax_error(const yypcontext_t *ctx, void *scanner, ParseCtx *pc) {
    (void)scanner;
    YYLTYPE *l = yypcontext_location(ctx);
    pc->errors++;
    /* After one syntax error, recovery often trips again on the same line;
     * those follow-ups only restate the first. */
    if (l->first_line == pc->last_error_line) return 0;
    pc->last_error_line = l->first_line;
    enum { MAX_EXPECTED = 64 };
    yysymbol_kind_t expected[MAX_EXPECTED];
    int n = yypcontext_expected_tokens(ctx, expected, MAX_EXPECTED);
    yysymbol_kind_t tok = yypcontext_token(ctx);
    /* A file that ends inside a body is missing a '}'; say that rather than
     * list everything a statement could start with. */
    bool wants_brace = false;
    for (int i = 0; i < n; i++) wants_brace |= !strcmp(yysymbol_name(expected[i]), "'}'");
    if (tok == YYSYMBOL_YYEOF && wants_brace) {
        for (int i = 0; i < n; i++)
            if (!strcmp(yysymbol_name(expected[i]), "'}'")) expected[0] = expected[i];
        n = 1;
    }
    const char *names[4];
    int m = 0;
    if (n > 0 && n <= 4) {
        /* Several token kinds read the same ("a number" twice): list each once. */
        for (int i = 0; i < n; i++) {
            const char *nm = expected_name(expected[i]);
            bool dup = false;
            for (int j = 0; j < m; j++) dup |= !strcmp(names[j], nm);
            if (!dup) names[m++] = nm;
        }
    }
    /* Many expected tokens that include the starts of an expression mean "an
     * expression was expected here". */
    bool wants_int = false, wants_name = false, wants_paren = false;
    for (int i = 0; i < n; i++) {
        wants_int |= expected[i] == YYSYMBOL_INT;
        wants_name |= expected[i] == YYSYMBOL_IDENT;
        wants_paren |= !strcmp(yysymbol_name(expected[i]), "'('");
    }
    if (m == 0 && wants_int && wants_name && wants_paren) {
        names[0] = "an expression";
        m = 1;
    }
    StrBuf b = {0}, found = {0}, want = {0};
    describe_lookahead(pc, tok, &found);
    for (int i = 0; i < m; i++) {
        if (i) sb_puts(&want, i == m - 1 ? " or " : ", ");
        sb_puts(&want, names[i]);
    }
    SrcLoc where = at(pc, *l);
    if (m > 0 && tok != YYSYMBOL_YYEOF && pc->prev_end_line > 0 && pc->prev_end_line < l->first_line) {
        /* The token that is missing belongs at the end of the previous line. */
        where.line = pc->prev_end_line;
        where.col = pc->prev_end_col;
        sb_printf(&b, "syntax error: expected %s at the end of the line (the next line starts with %s)", want.s, found.s);
    } else {
        sb_printf(&b, "syntax error: unexpected %s", found.s);
        if (m > 0) sb_printf(&b, "; expected %s", want.s);
    }
    diag_error(pc->d, where, "%s", b.s);
    free(b.s);
    free(found.s);
    free(want.s);
    return 0;
}

/* ---- entry points -------------------------------------------------------- */

static int run_parser(ParseCtx *pc, const char *text, size_t len) {
    yyscan_t scanner;
    if (yylex_init_extra(pc, &scanner)) return -1;
    YY_BUFFER_STATE buf = yy_scan_bytes(text, (int)len, scanner);
    int rc = yyparse(scanner, pc);
    yy_delete_buffer(buf, scanner);
    yylex_destroy(scanner);
    if (rc == 2 && !pc->too_deep) {
        /* bison's stack is full: the nesting, not the user, is at fault */
        SrcLoc l = {pc->file, pc->line, pc->col};
        diag_error(pc->d, l, "the file is nested too deeply to parse");
        pc->errors++;
    } else if (rc != 0 && pc->errors == 0) {
        /* bison gave up (memory exhausted: absurdly deep nesting) */
        SrcLoc l = {pc->file, pc->line, pc->col};
        diag_error(pc->d, l, "the file is nested too deeply to parse");
        pc->errors++;
    }
    return pc->errors;
}

int ast_parse_source(Diag *d, const char *file, const char *text, size_t len, AstFile *out) {
    ParseCtx pc = {0};
    pc.d = d; pc.file = file; pc.arena = out->arena; pc.out = out;
    pc.start_token = START_FILE;
    pc.line = 1; pc.col = 1;
    return run_parser(&pc, text, len);
}

AstExpr *ast_parse_expr(Diag *d, const char *file, const char *text, size_t len, SrcLoc loc, Arena *arena) {
    ParseCtx pc = {0};
    pc.d = d; pc.file = file; pc.arena = arena;
    pc.start_token = START_EXPR;
    pc.line = loc.line > 0 ? loc.line : 1;
    pc.col = loc.col > 0 ? loc.col : 1;
    if (run_parser(&pc, text, len) != 0) return NULL;
    return pc.expr;
}

int ast_parse_pipeline(Diag *d, const char *file, const char *text, size_t len, Arena *arena, AstExpr ***ops) {
    ParseCtx pc = {0};
    pc.d = d; pc.file = file; pc.arena = arena;
    pc.start_token = START_PIPELINE;
    pc.line = 1; pc.col = 1;
    if (run_parser(&pc, text, len) != 0 || pc.n_ops == 0) return -1;
    *ops = pc.ops;
    return pc.n_ops;
}
